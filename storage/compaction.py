"""Rewriting the SQLite tables that hold Twilio ids, so that no page of the file keeps a copy of an erased one.

`secure_delete` (storage/db.py) zeroes what SQLite frees: a deleted row, an overwritten value, a freed
page. It does not cover what SQLite leaves behind when it rebalances a b-tree: the cells of a page are
rewritten without zeroing the page's unallocated gap, so an old copy of a cell that moved (a take's
RecordingSid, its CallSid, its recording URL) can stay in that gap, out of every table value, after the
row is erased (README, Soak). Erasing in place first does not help: the copies were made earlier, while
the ids were still live.

So the two tables that ever hold a Twilio id, `calls` and `recordings`, are rewritten: in one
transaction, their rows are copied to memory, the tables emptied and the rows put back. Emptying a whole
table frees every page of it and of its indexes, and with `secure_delete` a freed page is zeroed (and a
table's first page cleared); the rows put back are only the live ones. A checkpoint then empties the
write-ahead log, whose old page images hold what was removed. This costs about 0.1 s at 10,000 cases;
a `VACUUM` of the whole file does the same and more, but rewrites the sealed audio too (about 14 s a GB
here), holding the write lock all that time (README, Soak).

It runs from the workers' periodic maintenance (jobs/retention.py), at most once per interval across
every process of the line, and only when Twilio ids were erased or cases purged since the last time.
Beside the database, `hotline.db-compacted` (0600) remembers that: it holds the count of erased calls
and of purged cases the last rewrite covered (no id, no time), its modification time is when that
rewrite ran, and a lock on it keeps two processes from running one at once.

The key store (storage/keystore.py) is small: it is `VACUUM`ed whole after a period key is destroyed,
since until its write-ahead log is emptied that log still holds the destroyed key's bytes.

PostgreSQL is left alone: its dead row versions last until its own VACUUM (README, What is stored).
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from storage.db import BUSY_SECONDS, Database, sqlite_file
from storage.files import create_private_file
from storage.models import AuditAction, AuditEntry, Call, Recording

log = logging.getLogger("hotline.storage")

STATE_SUFFIX = "-compacted"
# Every table a Twilio id is ever written to (Call.call_sid; Recording.recording_sid, call_sid, recording_url).
ID_TABLES = (Call.__tablename__, Recording.__tablename__)
SLOW_SECONDS = 5.0  # a rewrite longer than this is logged as a warning: the line's writes waited as long
LOG_EMPTYING_SECONDS = 10.0  # the write-ahead log is emptied at most this often after erasures (LogEmptier)
EMPTYING_PATIENCE = 0.2  # seconds an emptying waits for the write lock and for readers, before trying later


@dataclass(frozen=True)
class Compaction:
    """What one call did: "compacted", or why not ("off", "not sqlite", "not due", "up to date", "busy":
    another process is at it, "log kept": the tables are rewritten but a reader kept the write-ahead log
    from being emptied, so it is all done again next time, "failed")."""

    outcome: str
    seconds: float | None = None


def state_file(db: Database) -> Path | None:
    path = sqlite_file(db.url)
    return None if path is None else path.with_name(path.name + STATE_SUFFIX)


def erasure_mark(db: Database) -> str:
    """What has been erased so far: calls whose Twilio ids are erased, and cases purged (the audit trail's
    tombstones, which only grow). Any erasure or purge changes it."""
    with db.session() as session:
        erased = session.scalar(select(func.count()).select_from(Call).where(
            Call.deleted_at_twilio.is_(True), Call.call_sid.is_(None)))
        purged = session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == AuditAction.CASE_PURGED))
    return f"{erased} {purged}"


def is_up_to_date(db: Database) -> bool:
    """True once the tables were rewritten after the last erasure or purge (always, on PostgreSQL)."""
    path = state_file(db)
    if path is None:
        return True
    try:
        return path.read_text().strip() == erasure_mark(db)
    except FileNotFoundError:
        return False


def has_log(db: Database) -> bool:
    """Whether a SQLite database's write-ahead log holds anything (a checkpoint(TRUNCATE) empties it)."""
    path = sqlite_file(db.url)
    try:
        return path is not None and os.stat(f"{path}-wal").st_size > 0
    except FileNotFoundError:
        return False


def _checkpoint(connection) -> bool:
    busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    return not busy


class LogEmptier:
    """Empties a SQLite database's write-ahead log soon after Twilio ids were erased in it: at once if it
    was last emptied `every` seconds ago or more, otherwise when that much time has passed, once however
    many erasures came meanwhile. The log keeps the overwritten pages, ids and all, until emptied.

    Emptying is a checkpoint(TRUNCATE): it waits for the readers, holds the write lock meanwhile, and
    syncs the file to disk twice, so it waits at most EMPTYING_PATIENCE, then tries again later. Done after every call's erasure, as it was, under load it queued the
    webhooks' writes behind it dozens of times a minute; at most every 10 s an erased id stays in the
    log up to 10 s longer. Best effort: if a reader kept the log from being emptied it is tried once
    more after the same interval, and the periodic rewrite of the id tables empties it too
    (compact_if_due). A timer of this process does the later emptying: a process that exits first
    leaves it to that rewrite."""

    def __init__(self, db: Database, every: float):
        self.db, self.every = db, every
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._timer: threading.Timer | None = None

    def soon(self) -> None:
        if sqlite_file(self.db.url) is None:
            return
        with self._lock:
            if self._timer is not None:
                return  # already due: that emptying covers this erasure too
            wait = self._last + self.every - time.monotonic()
            if wait > 0:
                self._arm(wait, again=True)
                return
            self._last = time.monotonic()
        self._empty(again=True)

    def _arm(self, seconds: float, again: bool) -> None:
        self._timer = threading.Timer(seconds, self._when_due, args=(again,))
        self._timer.daemon = True
        self._timer.start()

    def _when_due(self, again: bool) -> None:
        with self._lock:
            self._timer, self._last = None, time.monotonic()
        self._empty(again)

    def _empty(self, again: bool) -> None:
        try:
            with self.db.engine.connect() as connection:
                # It waits for readers holding the write lock: not for long, or the webhooks' writes wait too.
                connection.exec_driver_sql(f"PRAGMA busy_timeout={int(EMPTYING_PATIENCE * 1000)}")
                try:
                    emptied = _checkpoint(connection)
                finally:
                    connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
        except Exception as error:  # e.g. the write lock not had in that time
            emptied = False
            log.info("could not empty SQLite's log after erasing Twilio ids: %s", type(error).__name__)
        if not emptied and again:
            with self._lock:
                if self._timer is None:
                    self._arm(self.every, again=False)


_emptiers: "weakref.WeakKeyDictionary[Database, LogEmptier]" = weakref.WeakKeyDictionary()
_emptiers_lock = threading.Lock()


def empty_log_soon(db: Database) -> None:
    """After erasing Twilio ids: see LogEmptier (one per database, in each process)."""
    with _emptiers_lock:
        emptier = _emptiers.get(db)
        if emptier is None:
            emptier = _emptiers[db] = LogEmptier(db, LOG_EMPTYING_SECONDS)
    emptier.soon()


def rewrite_id_tables(db: Database) -> Compaction:
    """Rewrite `calls` and `recordings` (rows unchanged), then empty the write-ahead log."""
    if sqlite_file(db.url) is None:
        return Compaction("not sqlite")
    started = time.perf_counter()
    with db.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")  # our own BEGIN and COMMIT
        try:
            # Emptying a table with foreign keys on would check (or cascade to) every row pointing at it;
            # the same rows come back, with the same ids. SQLite takes this outside a transaction only.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.exec_driver_sql("PRAGMA temp_store=MEMORY")  # the copies are never written to disk
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                for table in ID_TABLES:
                    connection.exec_driver_sql(f"CREATE TEMP TABLE hotline_rewrite AS SELECT * FROM main.{table}")
                    # Without a WHERE (and with no trigger or foreign key in the way) SQLite empties the table
                    # whole: every page of it and of its indexes freed, and so zeroed, its first page cleared.
                    connection.exec_driver_sql(f"DELETE FROM main.{table}")
                    connection.exec_driver_sql(f"INSERT INTO main.{table} SELECT * FROM temp.hotline_rewrite")
                    kept, back = connection.exec_driver_sql(
                        f"SELECT (SELECT count(*) FROM temp.hotline_rewrite), (SELECT count(*) FROM main.{table})").one()
                    if kept != back:
                        raise RuntimeError(f"{table}: {back} rows put back of {kept}")
                    connection.exec_driver_sql("DROP TABLE temp.hotline_rewrite")
                connection.exec_driver_sql("COMMIT")
            except BaseException:
                connection.exec_driver_sql("ROLLBACK")
                raise
            emptied = _checkpoint(connection)
        finally:
            connection.invalidate()  # never hand a connection without foreign keys back to the pool
    return Compaction("compacted" if emptied else "log kept", time.perf_counter() - started)


def vacuum(db: Database) -> Compaction:
    """VACUUM the whole file, then empty the write-ahead log: for a small database (the key store)."""
    if sqlite_file(db.url) is None:
        return Compaction("not sqlite")
    started = time.perf_counter()
    with db.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM runs outside a transaction
        connection.exec_driver_sql("VACUUM")
        emptied = _checkpoint(connection)
    return Compaction("compacted" if emptied else "log kept", time.perf_counter() - started)


def vacuum_key_store(db: Database) -> bool:
    """After a period key is destroyed: the key store's free pages and write-ahead log still hold its bytes.
    False (logged) when it could not be done; the workers' next purge does it when it finds the log holding
    something."""
    try:
        vacuum(db)
        return True
    except Exception as error:
        log.warning("could not VACUUM the key store: %s", type(error).__name__)
        return False


def compact_if_due(db: Database, every_seconds: float, now: float | None = None) -> Compaction:
    """Rewrite the tables that hold Twilio ids if ids were erased or cases purged since the last time,
    and that was `every_seconds` ago or more (0: never). Safe to call from every worker process at once."""
    if every_seconds <= 0:
        return Compaction("off")
    path = state_file(db)
    if path is None:
        return Compaction("not sqlite")
    try:
        create_private_file(path)
        descriptor = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError as error:  # a read-only folder, say: the purge before this still counts
        log.warning("could not open %s: %s", path.name, type(error).__name__)
        return Compaction("failed")
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return Compaction("busy")
        covered = os.pread(descriptor, 64, 0).decode("ascii", "replace").strip()
        elapsed = (time.time() if now is None else now) - os.fstat(descriptor).st_mtime
        if covered and 0 <= elapsed < every_seconds:
            return Compaction("not due")
        mark = erasure_mark(db)  # before the rewrite: an erasure after this is seen next time
        if mark == covered:
            return Compaction("up to date")
        try:
            done = rewrite_id_tables(db)
        except Exception as error:  # e.g. the write lock not had within the busy timeout: next time, then
            log.warning("could not rewrite the tables that held Twilio ids: %s", type(error).__name__)
            return Compaction("failed")
        if done.outcome == "compacted":
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, (mark + "\n").encode("ascii"), 0)
        log.log(logging.WARNING if done.seconds > SLOW_SECONDS else logging.INFO,
                "rewrote the tables that held Twilio ids in %.2f s, the line's writes waiting meanwhile%s",
                done.seconds, "" if done.outcome == "compacted" else
                "; a reader kept the write-ahead log, so it is done again next time")
        return done
    finally:
        os.close(descriptor)
