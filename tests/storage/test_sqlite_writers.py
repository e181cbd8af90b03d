"""SQLite's writers queue across processes (storage/sqlite_writers.py): a writer waits on the queue, not in
SQLite's busy handler, and goes the moment the one before it is done; a worker's writer lets the line's go
first, for a bounded time; nothing waits for ever.

Most tests set SQLite's own busy timeout to 0 on the waiting connection: a writer that reached SQLite's
lock while another held it would fail at once ("database is locked"). That it succeeds shows it waited
on the queue."""
from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import sqlite3
import stat
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import text

from storage import sqlite_writers
from storage.db import Database
from storage.sqlite_writers import MAX_DEFER_SECONDS, WAITING_SUFFIX, WRITERS_SUFFIX, connection_factory
from tests.support.processes import wait_until

FORK = multiprocessing.get_context("fork")
PATIENCE = 30  # seconds any step of a test may take before it counts as stuck


def connect(path: Path, timeout: float = 30.0, busy_ms: int = 0) -> sqlite3.Connection:
    connection = sqlite3.connect(path, factory=connection_factory(path, timeout), check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA busy_timeout={busy_ms}")
    return connection


@pytest.fixture
def database(tmp_path) -> Path:
    path = tmp_path / "hotline.db"
    make_table(path)
    return path


def make_table(path: Path) -> None:
    with closing(sqlite3.connect(path)) as setup:  # closed: the children are forked from this process
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE takes (id INTEGER PRIMARY KEY, writer TEXT)")


def writers(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as reader:
        return [row[0] for row in reader.execute("SELECT writer FROM takes ORDER BY id")]


def hold_a_write(path: str, holding, release) -> None:
    """A child process: begins a write, says so, and commits when told."""
    connection = connect(Path(path), busy_ms=30_000)
    connection.execute("INSERT INTO takes (writer) VALUES ('holder')")
    holding.set()
    release.wait(PATIENCE)
    connection.commit()


def write_once(path: str, name: str, started, background: bool = False) -> None:
    """A child process: one write transaction, through the queue, with SQLite's busy timeout at 0."""
    if background:
        sqlite_writers.write_in_the_background()
    connection = connect(Path(path))
    started.set()
    connection.execute("INSERT INTO takes (writer) VALUES (?)", (name,))
    connection.commit()


def start(target, *args) -> multiprocessing.Process:
    process = FORK.Process(target=target, args=args, daemon=True)
    process.start()
    return process


class Holder:
    """Another process in the middle of a write transaction."""

    def __init__(self, path: Path):
        self.holding, self.release = FORK.Event(), FORK.Event()
        self.process = start(hold_a_write, str(path), self.holding, self.release)
        assert self.holding.wait(PATIENCE)

    def commits(self) -> None:
        self.release.set()
        self.process.join(PATIENCE)
        assert self.process.exitcode == 0

    def is_killed(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(PATIENCE)



def test_a_writer_waits_for_the_one_before_on_the_queue_not_in_sqlite(database):
    holder = Holder(database)
    waiter = connect(database)  # SQLite's busy timeout 0: reaching SQLite's lock while held would fail
    done = threading.Event()

    def write() -> None:
        waiter.execute("INSERT INTO takes (writer) VALUES ('waiter')")
        waiter.commit()
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    assert not done.wait(0.3), "the second writer went in while the first held its transaction"
    holder.commits()
    thread.join(PATIENCE)
    assert done.is_set()
    assert writers(database) == ["holder", "waiter"]


def test_without_the_queue_the_same_write_fails_at_once(database):
    """The test above can fail: a plain connection reaches SQLite's lock and is refused."""
    holder = Holder(database)
    plain = sqlite3.connect(database)
    plain.execute("PRAGMA busy_timeout=0")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        plain.execute("INSERT INTO takes (writer) VALUES ('plain')")
    holder.commits()


def test_a_writer_that_dies_mid_transaction_lets_the_next_one_in(database):
    holder = Holder(database)
    holder.is_killed()
    waiter = connect(database)
    waiter.execute("INSERT INTO takes (writer) VALUES ('next')")
    waiter.commit()
    assert writers(database) == ["next"]  # the dead one's write went with it


def test_reads_do_not_queue(database):
    holder = Holder(database)
    reader = connect(database)
    assert reader.execute("SELECT count(*) FROM takes").fetchone() == (0,)  # at once, from before the write
    holder.commits()


def test_a_statement_that_fails_before_its_transaction_leaves_the_queue(database):
    writer = connect(database)
    with pytest.raises(sqlite3.OperationalError):
        writer.execute("INSERT INTO no_such_table VALUES (1)")
    assert not writer.in_transaction
    started = FORK.Event()
    other = start(write_once, str(database), "other", started)
    other.join(PATIENCE)
    assert other.exitcode == 0 and writers(database) == ["other"]


def test_rollback_and_close_leave_the_queue(database):
    for end in ("rollback", "close"):
        writer = connect(database)
        writer.execute("INSERT INTO takes (writer) VALUES ('undone')")
        getattr(writer, end)()
        started = FORK.Event()
        other = start(write_once, str(database), end, started)
        other.join(PATIENCE)
        assert other.exitcode == 0
    assert writers(database) == ["rollback", "close"]


def queue_once(path: str, started) -> None:
    """A forked child: takes and gives back the queue it inherited (not SQLite: a child must not use a
    database file its parent had open at the fork, whatever the queue does)."""
    queue = sqlite_writers.queue_for(Path(path), 30.0)
    started.set()
    queue.take()
    queue.give_back()


def test_a_forked_child_queues_apart_from_its_parent(database):
    parent = connect(database, busy_ms=30_000)
    parent.execute("INSERT INTO takes (writer) VALUES ('parent')")  # this process holds the queue now
    started = FORK.Event()
    child = start(queue_once, str(database), started)  # forked while this process holds it
    assert started.wait(PATIENCE)
    child.join(0.3)
    assert child.exitcode is None, "the child took the queue while its parent held it"
    parent.commit()
    child.join(PATIENCE)
    assert child.exitcode == 0  # neither stuck on the thread lock its parent held at the fork nor refused


def test_a_thread_waiting_on_its_own_other_connection_gets_sqlite_s_error(tmp_path):
    path = tmp_path / "own.db"
    make_table(path)
    first, second = connect(path, timeout=0.2), connect(path, timeout=0.2)
    first.execute("INSERT INTO takes (writer) VALUES ('first')")
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        second.execute("INSERT INTO takes (writer) VALUES ('second')")
    assert time.monotonic() - started < 5
    first.commit()
    second.execute("INSERT INTO takes (writer) VALUES ('second')")  # and the queue still works after it
    second.commit()


def waits_for(condition) -> bool:
    return wait_until(condition, timeout=PATIENCE, interval=0.001)


def test_a_process_s_writers_who_waited_go_in_the_order_they_came(database):
    """Its thread lock hands the queue to its longest waiter once that one has waited a moment: a writer
    that has just let go and writes again (as any thread running when it is let go) goes behind them."""
    holder = connect(database)
    holder.execute("INSERT INTO takes (writer) VALUES ('holder')")
    queue = holder.writer_queue
    waiting = []
    for n in range(4):
        def write(name=f"waiter {n}"):
            connection = connect(database)
            connection.execute("INSERT INTO takes (writer) VALUES (?)", (name,))
            connection.commit()
        waiting.append(threading.Thread(target=write))
        waiting[-1].start()
        assert waits_for(lambda: queue.waiters() == n + 1)
    time.sleep(sqlite_writers.HAND_OVER_AFTER_SECONDS)
    holder.commit()
    holder.execute("INSERT INTO takes (writer) VALUES ('holder again')")
    holder.commit()
    for thread in waiting:
        thread.join(PATIENCE)
    assert writers(database) == ["holder", "waiter 0", "waiter 1", "waiter 2", "waiter 3", "holder again"]


def test_a_thread_running_when_the_lock_is_let_go_may_take_it_before_a_waiter_of_a_moment(monkeypatch):
    monkeypatch.setattr(sqlite_writers, "HAND_OVER_AFTER_SECONDS", PATIENCE)  # every waiter "of a moment"
    lock = sqlite_writers.TurnTakingLock()
    assert lock.acquire(timeout=1)
    got = threading.Event()
    waiter = threading.Thread(target=lambda: lock.acquire(timeout=PATIENCE) and got.set())
    waiter.start()
    assert waits_for(lambda: lock.waiters() == 1)
    lock.release()
    assert lock.acquire(timeout=1)  # at once: the waiter has yet to wake
    assert not got.is_set() and lock.waiters() == 1
    lock.release()
    assert got.wait(PATIENCE)  # and the waiter is not forgotten
    waiter.join(PATIENCE)
    assert lock.waiters() == 0


def test_a_waiter_that_has_waited_long_enough_is_handed_the_lock():
    lock = sqlite_writers.TurnTakingLock()
    assert lock.acquire(timeout=1)
    got, done = threading.Event(), threading.Event()

    def wait_then_hold():
        assert lock.acquire(timeout=PATIENCE)
        got.set()
        done.wait(PATIENCE)
        lock.release()

    waiter = threading.Thread(target=wait_then_hold)
    waiter.start()
    assert waits_for(lambda: lock.waiters() == 1)
    time.sleep(sqlite_writers.HAND_OVER_AFTER_SECONDS)
    lock.release()
    assert not lock.acquire(timeout=0.05)  # the waiter's now, woken or not
    assert got.wait(PATIENCE)
    done.set()
    waiter.join(PATIENCE)
    assert lock.acquire(timeout=1)


def test_a_waiter_out_of_time_leaves_the_line_and_the_next_is_still_served():
    lock = sqlite_writers.TurnTakingLock()
    assert lock.acquire(timeout=1)
    outcomes = []
    impatient = threading.Thread(target=lambda: outcomes.append(("impatient", lock.acquire(timeout=0.05))))
    impatient.start()
    assert waits_for(lambda: lock.waiters() == 1)
    patient = threading.Thread(target=lambda: outcomes.append(("patient", lock.acquire(timeout=PATIENCE))))
    patient.start()
    impatient.join(PATIENCE)
    assert waits_for(lambda: lock.waiters() == 1)
    lock.release()
    patient.join(PATIENCE)
    assert outcomes == [("impatient", False), ("patient", True)]


def cross(first: str, second: str, holding, go, outcome) -> None:
    """A child: writes to `first`, then, once told, to `second`; reports what happened."""
    a, b = connect(Path(first), busy_ms=30_000), connect(Path(second), busy_ms=30_000)
    a.execute("INSERT INTO takes (writer) VALUES ('cross')")
    holding.set()
    go.wait(PATIENCE)
    try:
        b.execute("INSERT INTO takes (writer) VALUES ('cross')")
        b.commit()
        outcome.put("wrote")
    except sqlite3.OperationalError as error:
        outcome.put(str(error))
    a.commit()


def test_two_processes_waiting_on_each_other_across_two_databases_do_not_wait_for_ever(tmp_path):
    paths = []
    for name in ("hotline.db", "period-keys.db"):
        make_table(tmp_path / name)
        paths.append(str(tmp_path / name))
    outcome = FORK.Queue()
    holding = [FORK.Event(), FORK.Event()]
    go = FORK.Event()
    one = start(cross, paths[0], paths[1], holding[0], go, outcome)
    two = start(cross, paths[1], paths[0], holding[1], go, outcome)
    assert holding[0].wait(PATIENCE) and holding[1].wait(PATIENCE)
    go.set()
    results = sorted(outcome.get(timeout=PATIENCE) for _ in range(2))
    one.join(PATIENCE), two.join(PATIENCE)
    assert results[0] == "database is locked (two writers waited on each other)"
    assert results[1] == "wrote"


def test_a_worker_lets_the_line_s_waiting_writer_go_first(database):
    holder = Holder(database)
    line_started, worker_started = FORK.Event(), FORK.Event()
    line = start(write_once, str(database), "line", line_started)
    assert line_started.wait(PATIENCE)
    time.sleep(0.1)  # the line's writer is waiting on the queue now
    worker = start(write_once, str(database), "worker", worker_started, True)
    assert worker_started.wait(PATIENCE)
    time.sleep(0.05)
    holder.commits()
    line.join(PATIENCE), worker.join(PATIENCE)
    assert line.exitcode == 0 and worker.exitcode == 0
    assert writers(database) == ["holder", "line", "worker"]


def test_a_worker_waits_for_the_line_only_so_long(database):
    waiting = os.open(database.with_name(database.name + WAITING_SUFFIX), os.O_RDWR | os.O_CREAT, 0o600)
    holds_it, release = FORK.Event(), FORK.Event()
    line = start(_wait_for_ever, waiting, holds_it, release)  # a line's writer that never stops waiting
    assert holds_it.wait(PATIENCE)
    started = FORK.Event()
    began = time.monotonic()
    worker = start(write_once, str(database), "worker", started, True)
    worker.join(PATIENCE)
    took = time.monotonic() - began
    release.set()
    line.join(PATIENCE)
    assert worker.exitcode == 0 and writers(database) == ["worker"]
    assert MAX_DEFER_SECONDS <= took < MAX_DEFER_SECONDS + 5


def _wait_for_ever(fd: int, holds_it, release) -> None:
    fcntl.lockf(fd, fcntl.LOCK_SH)
    holds_it.set()
    release.wait(PATIENCE)


def test_the_queue_s_files_are_private_and_beside_the_database(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'hotline.db'}")
    try:
        with db.session() as session:
            session.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY)"))
            session.execute(text("INSERT INTO notes DEFAULT VALUES"))
            session.commit()
        for suffix in (WRITERS_SUFFIX, WAITING_SUFFIX):
            path = tmp_path / f"hotline.db{suffix}"
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        db.dispose()


def test_the_engines_connections_queue(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'hotline.db'}")
    try:
        connection = db.engine.raw_connection()
        assert isinstance(connection.dbapi_connection, sqlite_writers.QueuedWriterConnection)
        connection.close()
    finally:
        db.dispose()


def write_when_told(path: str, go, started) -> None:
    go.wait(PATIENCE)
    write_once(path, "other", started)


def test_a_savepoint_that_begins_a_transaction_queues_and_its_release_lets_go(database):
    go, started = FORK.Event(), FORK.Event()
    other = start(write_when_told, str(database), go, started)  # forked before this process writes
    writer = connect(database)
    writer.isolation_level = None  # savepoints as the statements that begin and end the transaction
    writer.execute("SAVEPOINT outer_one")
    writer.execute("INSERT INTO takes (writer) VALUES ('saved')")
    go.set()
    assert started.wait(PATIENCE)
    other.join(0.3)
    assert other.exitcode is None, "another writer went in while the savepoint's transaction was open"
    writer.execute("RELEASE outer_one")
    other.join(PATIENCE)
    assert other.exitcode == 0 and writers(database) == ["saved", "other"]


def test_a_folder_without_room_for_the_queue_gives_sqlite_s_kind_of_error(tmp_path, monkeypatch):
    path = tmp_path / "elsewhere.db"
    make_table(path)
    connection = connect(path)
    queue = connection.writer_queue
    monkeypatch.setattr(queue, "writers_path", tmp_path / "missing-folder" / "elsewhere.db-writers")
    with pytest.raises(sqlite3.OperationalError, match="queue beside the database is unavailable"):
        connection.execute("INSERT INTO takes (writer) VALUES ('nowhere')")
    assert not connection.in_transaction
