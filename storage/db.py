"""Engine and sessions. Functions elsewhere take a session; whoever opened it commits."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, exc, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, configure_mappers, sessionmaker

from storage.background import hurry, relax
from storage.files import create_private_file, tighten_file
from storage.sqlite_writers import WAITING_SUFFIX, WRITERS_SUFFIX, connection_factory

# Beside the database: SQLite's own (with the database file's permissions), then the writers' queue's
# (storage/sqlite_writers.py).
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal", WRITERS_SUFFIX, WAITING_SUFFIX)
# How long a SQLite writer waits for the write lock in SQLite's busy handler, or for its own process's other
# writer in the writers' queue (storage/sqlite_writers.py).
BUSY_SECONDS = 30
# A connection kept for each thread that may want one at once (gunicorn's 8 a process, the workers'). With
# fewer, each request beyond the pool opens a connection and closes it again: for SQLite the pragmas below
# run each time; for PostgreSQL it is a new server process each time, which cost the saturated line a
# quarter of its webhooks a second. Only as many as were ever in use at once stay open.
POOL = {"pool_size": 16, "max_overflow": 16}
# PostgreSQL: a connection back in the pool for less than this is used without a ping first. Under load
# each is back within a fraction of a second, and a ping is a round trip of its own: on 2 cores, a fifth
# of a webhook's time waiting on PostgreSQL. One idle longer (a quiet night, a server restarted or a
# firewall that dropped it) is pinged at checkout and replaced if dead, as pool_pre_ping would.
PING_AFTER_IDLE_SECONDS = 1.0


def sqlite_file(database_url: str) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory or URI-style database."""
    url = make_url(database_url)
    name = url.database
    if not url.drivername.startswith("sqlite") or not name or name == ":memory:" or name.startswith("file:") \
            or url.query.get("mode") == "memory":
        return None
    return Path(name)


def prepare_sqlite_file(database_url: str) -> None:
    """Create the database file 0600 before SQLite does (it would use the umask, 0644 by default, and
    give its -wal and -shm files the same), and tighten one made before, with its companions."""
    path = sqlite_file(database_url)
    if path is None:
        return
    if path.parent.is_dir():
        create_private_file(path)
    for companion in ("", *SQLITE_COMPANIONS):
        tighten_file(path.with_name(path.name + companion))


def make_engine(database_url: str) -> Engine:
    if database_url.startswith("sqlite"):
        prepare_sqlite_file(database_url)
        connect_args = {"timeout": BUSY_SECONDS, "check_same_thread": False}
        path = sqlite_file(database_url)
        if path is not None:  # writers queue across processes (storage/sqlite_writers.py)
            connect_args["factory"] = connection_factory(path, BUSY_SECONDS)
        engine = create_engine(database_url, **POOL, connect_args=connect_args)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):
            cursor = connection.cursor()
            # WAL lets the webhooks read while a worker writes; the busy timeout rides out short locks.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Deleted or overwritten content is zeroed, not left in free space. Not every old copy: a page
            # rebuilt while rebalancing keeps its unallocated gap, which the workers' compaction removes
            # (storage/compaction.py).
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        hurry_while_in_a_transaction(engine)
        return engine
    engine = create_engine(database_url, **POOL)
    ping_idle_connections(engine, PING_AFTER_IDLE_SECONDS)
    hurry_while_in_a_transaction(engine)
    return engine


def hurry_while_in_a_transaction(engine: Engine) -> None:
    """A worker's process that idles (storage/background.py) runs at the ordinary policy from a transaction's
    begin to its end, reads included: on PostgreSQL its row locks may keep a webhook waiting; on SQLite its
    write lock, and a reader's snapshot, which a checkpoint of the write-ahead log waits for holding it."""
    event.listen(engine, "begin", lambda _connection: hurry())
    event.listen(engine, "commit", lambda _connection: relax())
    event.listen(engine, "rollback", lambda _connection: relax())


def ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """pool_pre_ping, for connections idle at least idle_seconds: a connection the server dropped (a
    restart) is replaced at checkout, not failed on mid-webhook. One that fails while in use (the server
    went away within idle_seconds of its last use) invalidates the whole pool, as SQLAlchemy does on any
    disconnect, so every other connection is replaced at its next checkout."""
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _last_known_alive(_dbapi_connection, record) -> None:
        record.info["alive_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
        alive_at = record.info.get("alive_at")
        if alive_at is not None and time.monotonic() - alive_at < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.InvalidatePoolError() from error  # the pool reconnects, and replaces the others
            raise


class Database:
    def __init__(self, database_url: str):
        self.url = database_url
        self.engine = make_engine(database_url)
        # The ORM's classes are otherwise set up on their first use, which for a web process is its first
        # new case: 30 ms of CPU inside that webhook's write transaction, every other writer queued behind it.
        import storage.models  # noqa: F401  (the line's models, here first if nothing has imported them yet)

        configure_mappers()
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self.sessions()
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def is_reachable(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
