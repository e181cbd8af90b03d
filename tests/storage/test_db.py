"""The engine a web process shares among its threads keeps a connection for each of them."""
from __future__ import annotations

import threading

from sqlalchemy import event, text

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
