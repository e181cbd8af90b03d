"""Migration 0009 on a database that already holds cases: each keeps key_period NULL, which means the month
it was opened in, so its items go on being sealed (and the purge counts it) under that month's key as before;
the column is indexed; and the migration goes down and up again."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import command

from storage.db import make_engine
from storage.migrate import alembic_config, upgrade
from storage.models import random_id

OPENED = datetime(2026, 3, 10, 14, tzinfo=timezone.utc)


def a_case_at_0008(database_url: str) -> int:
    cases = sa.table("cases", *(sa.column(name) for name in (
        "id", "reference", "anonymous", "status", "urgent", "pin_length", "created_at", "updated_at")))
    case_id = random_id()
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(cases.insert().values(id=case_id, reference="55555550", anonymous=True, status="referred",
                                                 urgent=False, pin_length=6, created_at=OPENED, updated_at=OPENED))
    engine.dispose()
    return case_id


def test_0009_gives_existing_cases_no_key_period_and_goes_down_and_up_again(database_url):
    upgrade(database_url, "0008")
    case_id = a_case_at_0008(database_url)

    upgrade(database_url)
    engine = make_engine(database_url)
    assert "ix_cases_key_period" in {index["name"] for index in sa.inspect(engine).get_indexes("cases")}
    with engine.begin() as connection:
        assert connection.scalar(sa.text("SELECT key_period FROM cases WHERE id = :id"), {"id": case_id}) is None
        connection.execute(sa.text("UPDATE cases SET key_period = '2026-12' WHERE id = :id"), {"id": case_id})
    engine.dispose()

    command.downgrade(alembic_config(database_url), "0008")
    engine = make_engine(database_url)
    assert "key_period" not in {column["name"] for column in sa.inspect(engine).get_columns("cases")}
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT reference FROM cases WHERE id = :id"), {"id": case_id}) == "55555550"
    engine.dispose()
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT key_period FROM cases WHERE id = :id"), {"id": case_id}) is None
    engine.dispose()
