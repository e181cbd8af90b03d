"""Every row of every table, to show that a refused request wrote nothing at all."""
from __future__ import annotations

from functools import cache

from storage.models import Base


@cache
def _queries() -> tuple[tuple[str, str], ...]:
    # Plain SQL on the driver's own cursor: this runs once or twice per request in the property test.
    return tuple(
        (table.name, f'SELECT * FROM "{table.name}" ORDER BY '
                     + ", ".join(f'"{column.name}"' for column in table.primary_key.columns))
        for table in Base.metadata.sorted_tables
    )


def table_contents(db) -> dict[str, list[tuple]]:
    """Each table's rows in primary-key order, read through a connection of its own (what is committed)."""
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        contents = {}
        for name, query in _queries():
            cursor.execute(query)
            contents[name] = [tuple(row) for row in cursor.fetchall()]
        cursor.close()
        return contents
    finally:
        connection.close()  # back to the pool, its transaction rolled back
