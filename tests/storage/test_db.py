"""The engine a web process shares among its threads keeps a connection for each of them; on
PostgreSQL, a connection is pinged before use only after it sat idle, and one the server dropped is
replaced, not failed on."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, event, exc, text

from storage.db import Database
from tests.support.processes import procfile_command


def web_threads() -> int:
    """gunicorn's threads per web process, as the Procfile runs the line."""
    command = procfile_command("web", 0)
    return int(command[command.index("--threads") + 1])


def busy_rounds(db: Database, threads: int, rounds: int) -> None:
    """`rounds` times over, every thread holds a session and its connection at the same moment."""
    together = threading.Barrier(threads)
    failures: list[BaseException] = []

    def request() -> None:
        try:
            for _ in range(rounds):
                with db.session() as session:
                    session.execute(text("SELECT 1"))
                    together.wait(timeout=30)  # all of them hold a connection now
                together.wait(timeout=30)  # all of them gave it back
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)

    workers = [threading.Thread(target=request) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not failures, failures


def test_a_busy_web_process_opens_a_connection_per_thread_once(database_url: str) -> None:
    # A pool smaller than the threads opens and closes a connection for every request beyond it: on
    # PostgreSQL a new server process each time, which cost the saturated line a quarter of its throughput.
    db = Database(database_url)
    opened: list[object] = []
    event.listen(db.engine, "connect", lambda connection, record: opened.append(connection))
    threads = web_threads()
    try:
        busy_rounds(db, threads, rounds=4)
    finally:
        db.dispose()
    assert len(opened) == threads


IDLE_SECONDS = 0.2  # the threshold, shortened so that a test can wait past it


@pytest.fixture
def pg_engine(postgres_server, monkeypatch):
    """A PostgreSQL engine as the line builds it (storage/db.py make_engine)."""
    monkeypatch.setattr("storage.db.PING_AFTER_IDLE_SECONDS", IDLE_SECONDS)
    db = Database(postgres_server.new_database())
    yield db.engine
    db.dispose()


def server_pid(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar()


def end_server_process(postgres_server_url: str, pid: int) -> None:
    other = create_engine(postgres_server_url)
    try:
        with other.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    finally:
        other.dispose()


def pings(engine, work) -> int:
    """How many times the pool pinged while work() ran (the dialect's ping, not the statements)."""
    count = []
    original = engine.dialect.do_ping
    engine.dialect.do_ping = lambda connection: count.append(1) or original(connection)
    try:
        work()
    finally:
        engine.dialect.do_ping = original
    return len(count)


def select_one(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT 1")).scalar()


def test_a_connection_back_a_moment_ago_is_used_without_a_ping(pg_engine):
    engine = pg_engine
    select_one(engine)
    assert pings(engine, lambda: select_one(engine)) == 0  # one round trip fewer for each webhook under load
    time.sleep(IDLE_SECONDS * 1.5)
    assert pings(engine, lambda: select_one(engine)) == 1


def test_an_idle_connection_the_server_dropped_is_replaced_at_checkout(pg_engine):
    engine = pg_engine
    first = server_pid(engine)
    end_server_process(engine.url.render_as_string(hide_password=False), first)
    time.sleep(IDLE_SECONDS * 1.5)  # a quiet spell, or the server's restart, before the next webhook
    assert pings(engine, lambda: select_one(engine)) == 1
    assert server_pid(engine) != first


def test_a_connection_dropped_while_busy_fails_once_then_the_pool_is_replaced(pg_engine):
    # The documented cost of skipping the ping: the server went away within a second of the connection's
    # last use (no ping), so its next statement fails; SQLAlchemy then replaces every pooled connection.
    engine = pg_engine
    first = server_pid(engine)
    end_server_process(engine.url.render_as_string(hide_password=False), first)
    with pytest.raises(exc.OperationalError) as failure:
        select_one(engine)
    assert failure.value.connection_invalidated
    assert select_one(engine) == 1 and server_pid(engine) != first


def test_a_database_sets_up_the_orm_s_classes_before_any_transaction(tmp_path) -> None:
    """Otherwise SQLAlchemy sets them up on their first use: a web process's first new case, where it took
    30 ms of CPU inside the webhook's write transaction, every other writer queued behind it. A fresh
    interpreter, since this one's classes were set up by the tests before."""
    import subprocess
    import sys

    probe = ("from storage.db import Database; from storage.models import Base; "
             f"Database('sqlite:///{tmp_path / 'hotline.db'}'); "
             "print(sorted(m.class_.__name__ for m in Base.registry.mappers if not m.configured))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
