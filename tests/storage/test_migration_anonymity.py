"""Migration 0005 on a database that already holds calls: each take is linked to its call and numbered in
its case, every call's record at Twilio gets its delete job, and the times of anonymous calls (and of
every call and finished job) are rounded down to the hour; named cases and handlers' actions keep theirs."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import command

from storage.db import make_engine
from storage.migrate import alembic_config, upgrade
from storage.models import random_id

AT = datetime(2026, 11, 30, 14, 37, 12, 345678, tzinfo=timezone.utc)
HOUR = AT.replace(minute=0, second=0, microsecond=0)
SID = {name: prefix + name * 32 for name, prefix in (("1", "CA"), ("2", "CA"), ("3", "CA"))}
TAKE = {n: "RE" + str(n) * 32 for n in range(1, 5)}


def _table(metadata, name, *columns):
    return sa.Table(name, metadata, *(sa.Column(column, sa.DateTime(timezone=True)) if column.endswith(("_at", "_after"))
                                      else sa.Column(column) for column in columns))


def _tables():
    m = sa.MetaData()
    return dict(
        cases=_table(m, "cases", "id", "reference", "anonymous", "category", "status", "urgent", "pin_length",
                     "created_at", "updated_at"),
        calls=_table(m, "calls", "id", "call_sid", "case_id", "purpose", "failed_unlocks", "status", "started_at", "ended_at"),
        recordings=_table(m, "recordings", "id", "recording_sid", "call_sid", "case_id", "decision", "twilio_status",
                          "transcription_status", "transcription_attempts", "deleted_at_twilio", "created_at"),
        sealed_items=_table(m, "sealed_items", "id", "case_id", "kind", "blob_key", "size", "created_at"),
        jobs=_table(m, "jobs", "id", "kind", "recording_id", "state", "attempts", "run_after", "created_at", "updated_at"),
    )


def _rows_at_0004(connection) -> None:
    t = _tables()
    minute = timedelta(minutes=1)
    connection.execute(t["cases"].insert(), [
        dict(id=1, reference="11111110", anonymous=True, category=None, status="new", urgent=False, pin_length=4,
             created_at=AT, updated_at=AT + minute),
        dict(id=2, reference="22222220", anonymous=False, category=None, status="new", urgent=False, pin_length=4,
             created_at=AT + minute, updated_at=AT + minute),
    ])
    connection.execute(t["calls"].insert(), [
        dict(id=1, call_sid=SID["1"], case_id=1, purpose="report", failed_unlocks=0, status="completed",
             started_at=AT - minute, ended_at=AT + 3 * minute),
        dict(id=2, call_sid=SID["2"], case_id=2, purpose="report", failed_unlocks=0, status="completed",
             started_at=AT, ended_at=AT + 4 * minute),
    ])
    take = dict(decision="keep", twilio_status="completed", transcription_status="pending", transcription_attempts=0,
                deleted_at_twilio=True)
    connection.execute(t["recordings"].insert(), [
        dict(take, id=1, recording_sid=TAKE[1], call_sid=SID["1"], case_id=1, created_at=AT),
        dict(take, id=2, recording_sid=TAKE[2], call_sid=SID["1"], case_id=1, created_at=AT + minute),
        dict(take, id=3, recording_sid=TAKE[3], call_sid=SID["2"], case_id=2, created_at=AT + minute),
        dict(take, id=4, recording_sid=TAKE[4], call_sid=SID["3"], case_id=1, created_at=AT + 2 * minute),  # no call row
    ])
    connection.execute(t["sealed_items"].insert(), [
        dict(id=1, case_id=1, kind="recording", blob_key="recording/a", size=1, created_at=AT),
        dict(id=2, case_id=1, kind="note", blob_key="note/b", size=1, created_at=AT + timedelta(hours=1)),  # a handler's
        dict(id=3, case_id=2, kind="contact", blob_key="contact/c", size=1, created_at=AT),
    ])
    connection.execute(t["jobs"].insert(), [
        dict(id=1, kind="store-recording", recording_id=1, state="done", attempts=1, run_after=AT, created_at=AT,
             updated_at=AT + minute),
        dict(id=2, kind="store-recording", recording_id=3, state="queued", attempts=0, run_after=AT, created_at=AT,
             updated_at=AT),
    ])


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)


def test_existing_calls_are_migrated(database_url):
    upgrade(database_url, "0004")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        _rows_at_0004(connection)
    upgrade(database_url)
    t = _tables()
    with engine.connect() as c:
        takes = {row.id: row for row in c.execute(sa.text("SELECT * FROM recordings"))}
        calls = {row.call_sid: row for row in c.execute(sa.text("SELECT * FROM calls"))}
        assert set(calls) == set(SID.values())  # the take without a call row got one
        assert {n: takes[n].call_id for n in takes} == {1: calls[SID["1"]].id, 2: calls[SID["1"]].id,
                                                         3: calls[SID["2"]].id, 4: calls[SID["3"]].id}
        assert {n: takes[n].position for n in takes} == {1: 1, 2: 2, 3: 1, 4: 3}
        jobs = c.execute(sa.text("SELECT * FROM jobs WHERE kind = 'delete-call'")).all()
        assert sorted(job.call_id for job in jobs) == sorted(call.id for call in calls.values())
        assert all(job.state == "queued" and job.recording_id is None for job in jobs)

        def at(table, id_, column):
            return _aware(c.scalar(sa.select(t[table].c[column]).where(t[table].c.id == id_)))

        assert (at("cases", 1, "created_at"), at("cases", 1, "updated_at")) == (HOUR, HOUR)
        assert at("cases", 2, "created_at") == AT + timedelta(minutes=1)  # named: as it was
        call_times = c.execute(sa.select(t["calls"].c.started_at, t["calls"].c.ended_at)).all()
        assert all(_aware(moment).minute == 0 for row in call_times for moment in row)
        assert [at("recordings", n, "created_at") for n in (1, 2, 4)] == [HOUR] * 3
        assert at("recordings", 3, "created_at") == AT + timedelta(minutes=1)
        assert at("sealed_items", 1, "created_at") == HOUR
        assert at("sealed_items", 2, "created_at") == AT + timedelta(hours=1)  # a handler's note keeps its time
        assert at("sealed_items", 3, "created_at") == AT
        assert (at("jobs", 1, "run_after"), at("jobs", 1, "updated_at")) == (HOUR, HOUR)  # done: rounded
        assert at("jobs", 2, "run_after") == AT  # still to run: when it is due matters
    with engine.begin() as connection:  # new rows take random ids, as large as they come
        connection.execute(t["cases"].insert().values(id=2**53 - 1, reference="33333330", anonymous=True, status="new",
                                                      urgent=False, pin_length=6, created_at=HOUR, updated_at=HOUR))
        connection.execute(t["calls"].insert().values(id=random_id(), call_sid=None, case_id=2**53 - 1, failed_unlocks=0,
                                                      status="completed", started_at=HOUR))
    engine.dispose()


def test_0005_downgrades_and_upgrades_again(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(_tables()["cases"].insert().values(id=random_id(), reference="44444440", anonymous=True,
                                                              status="new", urgent=False, pin_length=6, created_at=HOUR,
                                                              updated_at=HOUR))
        case_id = connection.scalar(sa.text("SELECT id FROM cases"))
        connection.execute(_tables()["calls"].insert().values(id=random_id(), call_sid=None, case_id=case_id,
                                                              failed_unlocks=0, status="completed", started_at=HOUR))
    engine.dispose()
    command.downgrade(alembic_config(database_url), "0004")
    engine = make_engine(database_url)
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT call_sid FROM calls")).startswith("erased-")
    engine.dispose()
    upgrade(database_url)
