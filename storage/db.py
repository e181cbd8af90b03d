"""Engine and sessions. Functions elsewhere take a session; whoever opened it commits."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage.files import create_private_file, tighten_file

# SQLite makes these beside the database, with the database file's own permissions.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
BUSY_SECONDS = 30  # how long a SQLite writer waits for the write lock (SQLite's busy handler)
# A connection kept for each thread that may want one at once (gunicorn's 8 a process, the workers'). With
# fewer, each request beyond the pool opens a connection and closes it again: for SQLite the pragmas below
# run each time; for PostgreSQL it is a new server process each time, which cost the saturated line a
# quarter of its webhooks a second. Only as many as were ever in use at once stay open.
POOL = {"pool_size": 16, "max_overflow": 16}


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
        engine = create_engine(database_url, **POOL,
                               connect_args={"timeout": BUSY_SECONDS, "check_same_thread": False})

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

        return engine
    # pre_ping: a connection the server dropped (a restart) is replaced at checkout, not failed on mid-webhook.
    return create_engine(database_url, **POOL, pool_pre_ping=True)


class Database:
    def __init__(self, database_url: str):
        self.url = database_url
        self.engine = make_engine(database_url)
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
