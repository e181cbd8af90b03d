from __future__ import annotations

from alembic import context

from storage.db import make_engine
from storage.models import Base

config = context.config
database_url = config.attributes.get("database_url")


def run_migrations() -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a table to change it; SQLite will not drop the old one while foreign keys
            # are enforced and other tables' rows point at it. Off for this connection only (the pragma is
            # ignored inside a transaction, so before it begins), and every reference checked at the end.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            connection.commit()
            if broken:
                raise RuntimeError(f"the migrated database has rows pointing at rows that do not exist: {broken[:5]}")
    engine.dispose()


run_migrations()
