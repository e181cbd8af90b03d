"""A worker's process idles (SCHED_IDLE) except while it holds what the line may wait on (storage/background.py):
a database transaction, reads included (SQLite's write lock, a reader's snapshot a checkpoint waits for,
PostgreSQL's row locks). Where Linux would not let a thread come back, it never idles.

Each story runs in a forked child, so that this process's threads keep their policy."""
from __future__ import annotations

import multiprocessing
import os
import resource
import threading

import pytest
from sqlalchemy import text

from storage import background, sqlite_writers
from storage.db import Database

FORK = multiprocessing.get_context("fork")
PATIENCE = 60


def policy() -> str:
    """The calling thread's scheduling policy, by name."""
    return {os.SCHED_OTHER: "other", os.SCHED_IDLE: "idle", os.SCHED_BATCH: "batch"}[os.sched_getscheduler(0)]


def in_a_child(story, *args):
    """Run story(*args) in a forked child; its return value (a list of policies) comes back."""
    parent_end, child_end = FORK.Pipe()

    def run():
        try:
            child_end.send(("ok", story(*args)))
        except BaseException as error:
            child_end.send(("error", f"{type(error).__name__}: {error}"))

    process = FORK.Process(target=run, daemon=True)
    process.start()
    assert parent_end.poll(PATIENCE), "the child did not answer"
    outcome, value = parent_end.recv()
    process.join(PATIENCE)
    assert outcome == "ok", value
    return value


def as_an_unprivileged_worker() -> None:
    """This (child) process as a worker without CAP_SYS_NICE or room in RLIMIT_NICE, at niceness 10."""
    resource.setrlimit(resource.RLIMIT_NICE, (0, 0))
    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)  # nobody: no capabilities left
    os.setpriority(os.PRIO_PROCESS, 0, 10)


def idles_and_hurries() -> list[str]:
    seen = [policy()]
    assert background.run_in_the_background()
    seen.append(policy())
    background.hurry()
    seen.append(policy())
    background.hurry()  # a second hold (the key store's database, another thread's) inside the first
    background.relax()
    seen.append(policy())  # still holding the first
    background.relax()
    seen.append(policy())
    background.relax()  # one let-go too many changes nothing
    seen.append(policy())
    return seen


def test_a_worker_idles_and_runs_at_the_ordinary_policy_while_it_holds_something():
    if not background.can_idle_and_come_back():
        pytest.skip("this machine's limits do not let a thread come back from SCHED_IDLE (the next test covers it)")
    assert in_a_child(idles_and_hurries) == ["other", "idle", "other", "other", "idle", "idle"]


def test_while_one_thread_holds_something_every_thread_of_the_worker_runs_at_the_ordinary_policy():
    """The holder may wait for the interpreter lock held by another thread (decoding speech): that thread
    must not be left idling meanwhile."""
    if not background.can_idle_and_come_back():
        pytest.skip("this machine's limits do not let a thread come back from SCHED_IDLE")

    def story():
        background.run_in_the_background()
        seen, holding, release = [], threading.Event(), threading.Event()

        def holder():
            seen.append(policy())  # started after the process began to idle
            background.hurry()
            holding.set()
            release.wait(PATIENCE)
            background.relax()
            seen.append(policy())

        thread = threading.Thread(target=holder)
        thread.start()
        holding.wait(PATIENCE)
        seen.append(policy())  # this thread holds nothing, while the other does
        release.set()
        thread.join(PATIENCE)
        seen.append(policy())
        return seen

    assert in_a_child(story) == ["idle", "other", "idle", "idle"]


def checkpoint_behind_a_reader(database_url: str) -> list[str]:
    """A worker's checkpoint (storage/compaction.py) holds SQLite's write lock while it waits for a reader."""
    import sqlite3
    import time

    from storage import compaction
    from storage.db import sqlite_file

    background.run_in_the_background()
    database = Database(database_url)
    with database.session() as session:
        session.execute(text("CREATE TABLE marks (at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"))
        session.commit()
    reader = sqlite3.connect(sqlite_file(database_url), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM marks").fetchall()  # a snapshot older than the log's end, from here
    with database.session() as session:
        session.execute(text("INSERT INTO marks DEFAULT VALUES"))
        session.commit()
    seen, outcome = [policy()], []

    def checkpoint():
        with database.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA busy_timeout=3000")  # SQLite waits this long for the reader
            outcome.append(compaction._checkpoint(connection))

    thread = threading.Thread(target=checkpoint)
    thread.start()
    deadline = time.monotonic() + 2
    while policy() != "other" and time.monotonic() < deadline:
        time.sleep(0.01)
    seen.append(policy())
    thread.join(PATIENCE)
    seen.append(policy())
    reader.close()
    database.engine.dispose()
    return seen + outcome


def test_a_worker_s_checkpoint_runs_at_the_ordinary_policy_while_it_waits_for_a_reader(tmp_path):
    if not background.can_idle_and_come_back():
        pytest.skip("this machine's limits do not let a thread come back from SCHED_IDLE")
    # The checkpoint could not finish (the reader kept its snapshot): it waited with the lock, hurried.
    assert in_a_child(checkpoint_behind_a_reader, f"sqlite:///{tmp_path / 'hotline.db'}") == [
        "idle", "other", "idle", False]


def test_without_leave_to_come_back_a_worker_never_idles():
    def story():
        as_an_unprivileged_worker()
        came_back = background.can_idle_and_come_back()
        idled = background.run_in_the_background()
        background.hurry()
        holding = policy()
        background.relax()
        return [came_back, idled, holding, policy(), os.getpriority(os.PRIO_PROCESS, 0)]

    assert in_a_child(story) == [False, False, "other", "other", 10]


def hold_a_write(database_url: str, background_worker: bool) -> list[str]:
    """A worker's (or the line's) thread: before, inside and after a write transaction, and after a read."""
    if background_worker:
        background.run_in_the_background()
    database = Database(database_url)
    seen = [policy()]
    with database.session() as session:
        session.execute(text("SELECT 1"))
        seen.append(policy())
        session.execute(text("CREATE TABLE IF NOT EXISTS marks (at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"))
        session.execute(text("INSERT INTO marks DEFAULT VALUES"))
        seen.append(policy())
        session.commit()
        seen.append(policy())
        session.execute(text("INSERT INTO marks DEFAULT VALUES"))
        session.rollback()
        seen.append(policy())
    database.engine.dispose()
    return seen


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hotline.db'}"
    return request.getfixturevalue("postgres_server").new_database()


def test_a_worker_holding_the_database_runs_at_the_ordinary_policy_and_idles_after(any_database):
    if not background.can_idle_and_come_back():
        pytest.skip("this machine's limits do not let a thread come back from SCHED_IDLE")
    # The whole transaction, from its first statement, a read: PostgreSQL's row locks are taken as it goes,
    # and a checkpoint of SQLite's log waits for a reader's snapshot while it holds the write lock.
    assert in_a_child(hold_a_write, any_database, True) == ["idle", "other", "other", "idle", "idle"]


def test_the_line_s_threads_never_idle(any_database):
    assert in_a_child(hold_a_write, any_database, False) == ["other"] * 5


def test_a_celery_worker_lets_the_line_s_writers_go_first_and_does_not_idle():
    def story():
        idled = background.run_in_the_background(idle=False)
        return [idled, sqlite_writers._background["on"], policy()]

    assert in_a_child(story) == [False, True, "other"]
