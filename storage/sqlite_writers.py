"""SQLite's writers, one at a time across every process, each woken the moment the one before is done,
and the line's before the workers'.

SQLite lets one connection write at a time. One that finds the lock taken sleeps in SQLite's busy handler
and tries again after 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then 100 ms at a time: a writer that came
second to a transaction holding the lock 6 ms tries again at 8 ms, and if a newcomer took the lock in
between, at 18, 33, 53 ms... Under load the line's writing webhooks (a new call, a take, its status
callback, the call's end) and the worker's jobs met there, and those sleeps, with the worker's
transactions (at niceness 10, so often waiting for a core while they held the lock), made the tail of the
webhooks' latency (README, Performance: Load).

So each connection that storage/db.py makes to a database file queues before the first write of a
transaction (the statement at which pysqlite begins it), and lets go when the transaction ends:

1. on its own process's thread lock, so that one thread of a process waits on what follows, handed to
   the longest waiter once it has waited HAND_OVER_AFTER_SECONDS (TurnTakingLock: with a plain lock, a
   thread that was running when it was let go, such as the one letting go, took it before the waiter
   woken for it, and under load a webhook waited behind ten newcomers' transactions);
2. a worker's process (`write_in_the_background`, through storage/background.py: jobs work and the Celery
   workers) first lets any writer of the line's that is waiting go first, for at most MAX_DEFER_SECONDS
   a transaction: the line's
   writers hold a shared lock on `<db>-writers-waiting` from the moment they queue, and the worker's
   polls for the exclusive one;
3. on an exclusive POSIX record lock of `<db>-writers` (fcntl), which the kernel hands to a waiter the
   moment it is let go, and lets go of itself when its process dies.

With every writer queued there, SQLite's own lock is free when a writer reaches it; its busy handler is
left for whoever does not queue (the sqlite3 shell, an older release mid-upgrade) and for the write-ahead
log's checkpoint (storage/compaction.py). A connection waiting on the record lock holds nothing of
SQLite's (pysqlite begins the transaction at that write, after the wait). A thread waiting on itself (a
second connection that writes while its first is in a write transaction) gives up after the timeout with
SQLite's own error, as SQLite's busy handler would have; two processes waiting on each other across two
databases (the line's and the key store) are told apart by the kernel (EDEADLK), and one of them gets
that error too, instead of both waiting for ever."""
from __future__ import annotations

import collections
import errno
import fcntl
import os
import re
import sqlite3
import threading
import time
from pathlib import Path

WRITERS_SUFFIX = "-writers"  # beside hotline.db, hotline.db-wal and hotline.db-shm
WAITING_SUFFIX = "-writers-waiting"
# A worker's transaction lets the line's writers go first for at most this long; it then queues with them,
# so a line that never stops writing slows its workers to a few transactions a second, and never stops them.
MAX_DEFER_SECONDS = 0.25
DEFER_POLL_SECONDS = 0.002
# A writer of this process waiting this long is handed the queue next, ahead of any thread that asks later
# (TurnTakingLock). Before that, whoever asks while it is free takes it: handing it to every waiter in turn
# did not lower the paced tail in one set of rounds, and cost the saturated line 13% of its webhooks a
# second in another (README, Load).
HAND_OVER_AFTER_SECONDS = 0.005

# pysqlite begins a transaction before these (its own test of a statement's first word); an explicit BEGIN
# begins one, and so does a SAVEPOINT outside one. A transaction ends at COMMIT, ROLLBACK or the outermost
# savepoint's RELEASE, as statements or as the connection's calls.
_BEGINS_A_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|BEGIN|SAVEPOINT)\b", re.IGNORECASE)

_background = {"on": False}


def write_in_the_background() -> None:
    """This process's writers (a worker's) let any of the line's writers that is waiting go first."""
    _background["on"] = True


class _Waiter:
    __slots__ = ("bell", "since", "rung", "handed")

    def __init__(self):
        self.bell = threading.Lock()
        self.bell.acquire()  # released to wake this waiter
        self.since = time.monotonic()
        self.rung = False  # woken to try for the lock, and not yet up
        self.handed = False  # given the lock outright


class TurnTakingLock:
    """A thread lock that a thread may take whenever it is free, even past threads already waiting (the
    quickest way through under load: the thread that asks is running, a waiter has first to wake), but
    that is handed straight to the longest waiter once it has waited HAND_OVER_AFTER_SECONDS, so that no
    writer waits behind newcomer after newcomer."""

    def __init__(self):
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: collections.deque[_Waiter] = collections.deque()

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            waiter = _Waiter()
            self._waiters.append(waiter)
        while True:
            remaining = deadline - time.monotonic()
            woken = remaining > 0 and waiter.bell.acquire(timeout=remaining)
            with self._mutex:
                if waiter.handed:
                    return True
                if not woken:  # out of time: out of the line, and the next one woken if this one was
                    self._waiters.remove(waiter)
                    if waiter.rung and not self._held:
                        self._ring_first()
                    return False
                waiter.rung = False
                if not self._held:
                    self._held = True
                    self._waiters.remove(waiter)
                    return True
                # A thread that was running took it first: wait again, first in line.

    def release(self) -> None:
        with self._mutex:
            if self._waiters and time.monotonic() - self._waiters[0].since >= HAND_OVER_AFTER_SECONDS:
                first = self._waiters.popleft()
                first.handed = True  # held still: the first waiter's now
                if not first.rung:
                    first.bell.release()
                return
            self._held = False
            self._ring_first()

    def _ring_first(self) -> None:
        if self._waiters and not self._waiters[0].rung:
            self._waiters[0].rung = True
            self._waiters[0].bell.release()

    def waiters(self) -> int:
        return len(self._waiters)


class WriterQueue:
    """The queue for one database file, in one process."""

    def __init__(self, database: Path, timeout: float):
        self.writers_path = database.with_name(database.name + WRITERS_SUFFIX)
        self.waiting_path = database.with_name(database.name + WAITING_SUFFIX)
        self.timeout = timeout
        self._thread_lock = TurnTakingLock()
        self._files: dict[Path, int] = {}
        self._waiting_held = False

    def forget_after_fork(self) -> None:
        """In a forked child: its parent's threads, and whatever they held, are not in it; nor are the
        parent's record locks, and it opens the files again for its own."""
        self._thread_lock = TurnTakingLock()
        self._files, self._waiting_held = {}, False

    def waiters(self) -> int:
        """This process's threads waiting behind the one that holds its place in the queue."""
        return self._thread_lock.waiters()

    def _file(self, path: Path) -> int:
        # Record locks belong to a process, and a process lets go of all it holds on a file when it closes
        # any descriptor of it: each file is opened once a process and never closed.
        fd = self._files.get(path)
        if fd is None:
            fd = self._files[path] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return fd

    def take(self) -> None:
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise sqlite3.OperationalError("database is locked (this process's other writer held it)")
        try:
            if _background["on"]:
                self._let_the_line_go_first()
            else:
                fcntl.lockf(self._file(self.waiting_path), fcntl.LOCK_SH)
                self._waiting_held = True
            fcntl.lockf(self._file(self.writers_path), fcntl.LOCK_EX)
        except BaseException as error:
            self._let_go_of_waiting()
            self._thread_lock.release()
            if not isinstance(error, OSError):
                raise
            if error.errno == errno.EDEADLK:  # another process waits on what this one holds, and holds this
                raise sqlite3.OperationalError("database is locked (two writers waited on each other)") from None
            # A folder this process cannot write to (SQLite could not make its -wal file there either).
            raise sqlite3.OperationalError(f"the writers' queue beside the database is unavailable "
                                           f"({errno.errorcode.get(error.errno, error.errno)})") from None

    def _let_the_line_go_first(self) -> None:
        waiting = self._file(self.waiting_path)
        deadline = time.monotonic() + MAX_DEFER_SECONDS
        while True:
            try:
                fcntl.lockf(waiting, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    return
                time.sleep(DEFER_POLL_SECONDS)
                continue
            fcntl.lockf(waiting, fcntl.LOCK_UN)
            return

    def _let_go_of_waiting(self) -> None:
        if self._waiting_held:
            self._waiting_held = False
            fcntl.lockf(self._file(self.waiting_path), fcntl.LOCK_UN)

    def give_back(self) -> None:
        try:
            fcntl.lockf(self._file(self.writers_path), fcntl.LOCK_UN)
            self._let_go_of_waiting()
        finally:
            self._thread_lock.release()


_queues: dict[Path, WriterQueue] = {}
_queues_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _queues_lock
    _queues_lock = threading.Lock()
    for queue in _queues.values():
        queue.forget_after_fork()


# gunicorn forks its web processes from a master that may have written (the schema check, the worker's
# start); a child that kept a thread lock its parent held at the fork would wait on it for ever.
os.register_at_fork(after_in_child=_after_fork_in_child)


def queue_for(database: Path, timeout: float) -> WriterQueue:
    """One queue per database file and process, however many engines open it."""
    database = Path(os.path.abspath(database))
    with _queues_lock:
        queue = _queues.get(database)
        if queue is None:
            queue = _queues[database] = WriterQueue(database, timeout)
        return queue


class QueuedWriterCursor(sqlite3.Cursor):
    def execute(self, sql, parameters=(), /):
        return self.connection.queued(super().execute, sql, parameters)

    def executemany(self, sql, parameters, /):
        return self.connection.queued(super().executemany, sql, parameters)


class QueuedWriterConnection(sqlite3.Connection):
    """A sqlite3 connection whose write transactions queue first (sqlite3.connect's factory)."""

    writer_queue: WriterQueue  # set on a subclass per database file (connection_factory)
    _holding = False

    def cursor(self, factory=QueuedWriterCursor):
        return super().cursor(factory)

    # sqlite3's own shortcuts make a plain cursor, past cursor() above.
    def execute(self, sql, parameters=(), /):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, parameters, /):
        return self.cursor().executemany(sql, parameters)

    def queued(self, run, sql, parameters):
        if not self._holding and not self.in_transaction and _BEGINS_A_WRITE.match(sql):
            self.writer_queue.take()
            self._holding = True
        try:
            return run(sql, parameters)
        finally:
            self._let_go_if_done()

    def _let_go_if_done(self) -> None:
        # A statement that failed before beginning, a COMMIT or ROLLBACK as a statement: the transaction is over.
        if self._holding and not self.in_transaction:
            self._let_go()

    def _let_go(self) -> None:
        self._holding = False
        self.writer_queue.give_back()

    def commit(self):
        try:
            super().commit()
        finally:
            self._let_go_if_done()

    def rollback(self):
        try:
            super().rollback()
        finally:
            self._let_go_if_done()

    def close(self):
        try:
            super().close()
        finally:
            if self._holding:  # a closed connection's transaction is over (in_transaction cannot be asked)
                self._let_go()


def connection_factory(database: Path, timeout: float) -> type[QueuedWriterConnection]:
    return type("QueuedWriterConnection", (QueuedWriterConnection,), {"writer_queue": queue_for(database, timeout)})
