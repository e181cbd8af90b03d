"""SQLite's write-ahead log is emptied soon after Twilio ids are erased, at most once an interval
(storage/compaction.py LogEmptier): the log keeps the overwritten pages, ids and all, until then."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import event, text

from storage.compaction import LogEmptier
from storage.db import Database, sqlite_file
from tests.support.processes import wait_until
from tests.support.sqlite_files import found_in_file_or_log

EVERY = 0.5  # seconds, for the test (the line's is LOG_EMPTYING_SECONDS)


@pytest.fixture
def db(tmp_path: Path):
    database = Database(f"sqlite:///{tmp_path / 'line.db'}")
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE calls (id INTEGER PRIMARY KEY, call_sid TEXT)"))
    yield database
    database.dispose()


class Line:
    def __init__(self, db: Database):
        self.db = db
        self.checkpoints = 0
        event.listen(db.engine, "before_cursor_execute", self._count)

    def _count(self, _conn, _cursor, statement, *_):
        self.checkpoints += "wal_checkpoint" in statement

    def erases(self, call_sid: str) -> None:
        """A call's CallSid written, then erased, as the call-record job does (jobs/calls.py)."""
        with self.db.session() as session:
            session.execute(text("INSERT INTO calls (call_sid) VALUES (:sid)"), {"sid": call_sid})
            session.commit()
            session.execute(text("UPDATE calls SET call_sid = NULL WHERE call_sid = :sid"), {"sid": call_sid})
            session.commit()

    def files_hold(self, call_sid: str) -> bool:
        return bool(found_in_file_or_log([call_sid], self.db.url))

    def log_size(self) -> int:
        return os.stat(f"{sqlite_file(self.db.url)}-wal").st_size


def test_the_first_erasure_empties_the_log_at_once(db):
    line, emptier = Line(db), LogEmptier(db, EVERY)
    line.erases("CA" + "1" * 32)
    assert line.files_hold("CA" + "1" * 32)  # the log still has the page from before the erasure
    emptier.soon()
    assert line.log_size() == 0
    assert not line.files_hold("CA" + "1" * 32)


def test_erasures_soon_after_wait_for_one_emptying_at_the_end_of_the_interval(db):
    line, emptier = Line(db), LogEmptier(db, EVERY)
    line.erases("CA" + "1" * 32)
    emptier.soon()
    later = ["CA" + digit * 32 for digit in "234"]
    for sid in later:
        line.erases(sid)
        emptier.soon()
    assert line.checkpoints == 1 and line.log_size() > 0  # not yet: within the interval of the first
    assert wait_until(lambda: line.log_size() == 0)
    assert line.checkpoints == 2  # one for the three
    assert not any(line.files_hold(sid) for sid in later)


def test_a_log_kept_by_a_reader_is_emptied_once_the_reader_is_gone(db):
    line, emptier = Line(db), LogEmptier(db, EVERY)
    line.erases("CA" + "5" * 32)
    reader = sqlite3.connect(sqlite_file(db.url))
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM calls").fetchone()  # holds a snapshot that needs the log
    line.erases("CA" + "6" * 32)
    emptier.soon()
    assert line.log_size() > 0  # the reader kept it
    reader.rollback()
    reader.close()
    assert wait_until(lambda: line.log_size() == 0)
    assert not line.files_hold("CA" + "6" * 32)

