"""An erased Twilio id is gone from the SQLite file itself, not only from every table value.

`secure_delete` zeroes what SQLite frees, but not everything it leaves behind: when it rebalances a
b-tree it rewrites a page's cells without zeroing the page's unallocated gap, so an old copy of a cell
that moved (a RecordingSid, a CallSid, a recording URL) can stay in that gap, long after the row itself
is erased. The soak found such copies in the `recordings` table's leaf pages. This builds the same
history on a real file, through the line's own engine and models: many calls and takes of varied sizes,
inserted, updated and erased as the line does, the erasure done by the call-record job's own code
(jobs/calls.py), enough rows that the pages split and rebalance. Then the workers' periodic maintenance
(jobs/retention.py `purge_for`) must leave no erased id in the database file or its write-ahead log.

Random ids and SIDs are drawn from a seeded generator, so the file's layout, and the test, is the same
at every run.
"""
from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from jobs import calls as call_jobs
from jobs.retention import purge_for
from storage.models import Call, Case, Recording
from tests.support.sqlite_files import file_and_log_bytes, found_in_file_or_log

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

HOUR = datetime(2026, 3, 2, 14, tzinfo=timezone.utc)
ACCOUNT = "AC" + "0" * 31 + "1"


class History:
    """Calls arriving, their takes stored, and, some calls later, each call's ids erased by its job."""

    def __init__(self, hotline, seed: int):
        self.hotline = hotline
        self.rng = random.Random(seed)
        self.erased: list[str] = []
        self.kept: list[str] = []

    def _id(self) -> int:
        return self.rng.randrange(1, 2**53)

    def _sid(self, prefix: str) -> str:
        return prefix + "%032x" % self.rng.getrandbits(128)

    def _calls(self, session, count: int) -> list[tuple[Call, list[Recording]]]:
        made = []
        for _ in range(count):
            case = Case(id=self._id(), reference=f"{self.rng.randrange(10**7, 10**8)}", anonymous=True,
                        pin_length=6, created_at=HOUR, updated_at=HOUR)
            call = Call(id=self._id(), call_sid=self._sid("CA"), case_id=case.id, purpose="report",
                        started_at=HOUR)
            takes = []
            for position in range(1, self.rng.randint(1, 3) + 1):
                sid = self._sid("RE")
                takes.append(Recording(
                    id=self._id(), recording_sid=sid, call_sid=call.call_sid, call_id=call.id, case_id=case.id,
                    position=position, created_at=HOUR,
                    recording_url=f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{sid}"))
            session.add_all([case, call, *takes])
            made.append((call, takes))
        session.commit()
        return made

    def run(self, calls: int = 800, batch: int = 8, lag: int = 100) -> None:
        """`calls` calls, `batch` at a time; a call's ids are erased once `lag` more calls have come in
        (the line erases them a minute or more after the call ends, while other calls go on)."""
        waiting: list[int] = []
        with self.hotline.db.session() as session:
            for _ in range(0, calls, batch):
                made = self._calls(session, batch)
                for _, takes in made:  # each take's status callback, then its store job and transcription
                    for take in takes:
                        take.twilio_status, take.duration_seconds = "completed", self.rng.randint(1, 600)
                        if self.rng.random() < 0.8:  # rows of varied, growing sizes
                            take.transcription_error = "e" * self.rng.randint(1, 600)
                session.commit()
                for _, takes in made:
                    for take in takes:
                        take.deleted_at_twilio, take.transcription_status = True, "done"
                    session.commit()
                for call, takes in made:
                    ids = [call.call_sid] + [take.recording_sid for take in takes]
                    waiting.append(call.id)
                    self.kept += ids
                while len(waiting) > lag:
                    self.erase(session, waiting.pop(0))
        self.kept = [sid for sid in self.kept if sid not in set(self.erased)]

    def erase(self, session, call_id: int) -> None:
        """As the call-record job does once Twilio has deleted its record of the call."""
        call = session.get(Call, call_id)
        takes = session.scalars(select(Recording).where(Recording.call_id == call_id)).all()
        self.erased += [call.call_sid] + [take.recording_sid for take in takes]
        call.deleted_at_twilio = True  # Twilio's delete succeeded: the job goes straight to forgetting
        call_jobs.delete_call_record(self.hotline.workshop, session, call_id, session.commit)


@pytest.fixture
def history(hotline) -> History:
    history = History(hotline, seed=1)
    history.run()
    return history


@SQLITE
def test_the_workers_maintenance_leaves_no_erased_twilio_id_in_the_sqlite_file(hotline, history):
    with hotline.db.session() as session:  # no table value holds one
        assert not session.scalars(select(Call.call_sid).where(Call.deleted_at_twilio, Call.call_sid.is_not(None))).all()
    url = hotline.db.url
    left = found_in_file_or_log(history.erased, url)
    assert left, ("this history no longer leaves erased ids in the file (a newer SQLite?): the test would "
                  "prove nothing; make the history harsher")
    rows = _rows(hotline)
    assert purge_for(hotline.workshop)["compacted"] == 1
    assert found_in_file_or_log(history.erased, url) == [], "erased Twilio ids are still in the SQLite file"
    assert found_in_file_or_log(history.kept, url) == history.kept  # the search does find what is still there
    assert _rows(hotline) == rows  # the tables were rewritten, not changed
    with hotline.db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # still on for the line


def _rows(hotline) -> dict[str, list]:
    with hotline.db.engine.connect() as connection:
        return {table: connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id").all()
                for table in ("calls", "recordings", "jobs", "cases")}


def _erase_one_more(hotline) -> str:
    """One more call, made and erased: returns its CallSid."""
    history = History(hotline, seed=2)
    with hotline.db.session() as session:
        [(call, _)] = history._calls(session, 1)
        history.erase(session, call.id)
    return call.call_sid


@SQLITE
def test_compaction_runs_at_most_once_an_interval_and_only_after_an_erasure(hotline):
    from storage.compaction import compact_if_due, is_up_to_date, state_file

    db, every = hotline.db, hotline.settings.compact_seconds
    assert every == 3600  # the default
    assert not is_up_to_date(db)  # never compacted
    assert purge_for(hotline.workshop)["compacted"] == 1
    assert is_up_to_date(db)
    state = state_file(db)
    ran_at = state.stat().st_mtime
    assert compact_if_due(db, every, now=ran_at + 2 * every).outcome == "up to date"  # nothing erased since

    _erase_one_more(hotline)
    assert not is_up_to_date(db)
    assert compact_if_due(db, every, now=ran_at + every - 1).outcome == "not due"
    assert purge_for(hotline.workshop)["compacted"] == 0  # it ran a moment ago
    assert compact_if_due(db, every, now=ran_at + every).outcome == "compacted"
    assert is_up_to_date(db)
    assert compact_if_due(db, 0).outcome == "off"

    # What it keeps beside the database: two counts, no id and no time; readable by the line's user only.
    assert state.name == "hotline.db-compacted" and state.stat().st_mode & 0o777 == 0o600
    assert state.read_text().strip() == "1 0"


@SQLITE
def test_a_purged_case_makes_compaction_due_too(hotline):
    from jobs.retention import purge
    from storage.compaction import compact_if_due, is_up_to_date
    from storage.models import CaseStatus
    from tests.storage.test_retention import MARCH
    from tests.support.retention import a_worked_case

    a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 120)
    assert compact_if_due(hotline.db, 60).outcome == "compacted"
    assert purge(hotline.db, hotline.blobs, hotline.periods, hotline.settings.retention)["purged"] == 1
    assert not is_up_to_date(hotline.db)  # its erased call went with it, its tombstone came
    assert compact_if_due(hotline.db, 60, now=1e12).outcome == "compacted"


@SQLITE
def test_while_one_process_compacts_the_others_go_on(hotline):
    import fcntl

    from storage.compaction import compact_if_due, state_file

    compact_if_due(hotline.db, 1)
    with open(state_file(hotline.db), "rb") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        assert compact_if_due(hotline.db, 1, now=1e12).outcome == "busy"


@SQLITE
def test_a_destroyed_period_key_leaves_no_copy_in_the_key_store_file(hotline):
    from storage.models import CaseStatus
    from tests.storage.test_retention import MARCH
    from tests.support.retention import a_worked_case

    a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 120)
    sealed = hotline.periods.get("2026-03").sealed_private
    done = purge_for(hotline.workshop)
    assert done["purged"] == 1 and done["period keys destroyed"] == 1
    assert hotline.periods.get("2026-03") is None
    assert sealed not in file_and_log_bytes(hotline.periods.db.url)


def test_postgresql_is_left_to_its_own_vacuum():
    from storage.compaction import compact_if_due, is_up_to_date, rewrite_id_tables, vacuum
    from storage.db import Database

    db = Database("postgresql+psycopg://nobody@127.0.0.1:9/none")  # never reached
    try:
        assert compact_if_due(db, 60).outcome == "not sqlite"
        assert rewrite_id_tables(db).outcome == vacuum(db).outcome == "not sqlite"
        assert is_up_to_date(db)
    finally:
        db.dispose()


@SQLITE
def test_the_interval_is_a_setting(settings_env):
    from settings import Settings

    assert Settings.from_env(dict(settings_env, HOTLINE_COMPACT_SECONDS="0")).compact_seconds == 0
    assert Settings.from_env(dict(settings_env, HOTLINE_COMPACT_SECONDS="86400")).compact_seconds == 86400
