"""Databases at a chosen revision, for the schema check's tests (storage/migrate.py). Revisions are read
from the scripts, never written down here: another migration may be added at any time."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from storage.migrate import DATABASE, Store, alembic_config, script_heads
from tests.support.processes import ROOT

PASSWORD = "pw-not-to-be-shown-7f3a"


def release_step(settings) -> str:
    """`flask --app app db upgrade`, as the Procfile's release step and scripts/run run it on a fresh
    machine before anything else starts (the line, the workers and the console refuse an unmigrated
    database): the operators' app makes the data directory, then both stores are migrated. Its output."""
    from app import create_app

    app = create_app(settings)
    try:
        result = app.test_cli_runner().invoke(args=["db", "upgrade"])
        assert result.exit_code == 0, result.output
        return result.output
    finally:
        app.extensions["hotline"].dispose()


def head(store: Store = DATABASE) -> str:
    (only,) = script_heads(store)
    return only


def previous(store: Store = DATABASE) -> str | None:
    """The revision before the head (None: the head is the first)."""
    config = alembic_config("sqlite://", store)
    down = ScriptDirectory.from_config(config).get_revision(head(store)).down_revision
    assert not isinstance(down, tuple), "a merge revision: pick one of its parents"
    return down


def upgrade_to(url: str, store: Store, revision: str | None) -> None:
    """Really migrated to revision (None: left empty)."""
    if revision is not None:
        command.upgrade(alembic_config(url, store), revision)


def stamp_as(url: str, store: Store, revision: str) -> None:
    """The version table says revision, whatever the tables are (an unknown revision too, as a newer
    release's migration leaves it)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"UPDATE {store.version_table} SET version_num = :revision"), {"revision": revision})
    finally:
        engine.dispose()


def with_password(url: str) -> str:
    """PostgreSQL's URL with a password in it (the test server trusts local connections, so any password
    connects); a SQLite URL has none to give."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    return parsed.set(password=PASSWORD).render_as_string(hide_password=False)


def process_env(settings_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT),
            **settings_env, "HOTLINE_TRANSCRIPTION": "off", **extra}


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


def run_bounded(command_line: list[str], env: dict[str, str], timeout: float) -> Finished:
    """Run a process (and whatever it starts) to its end; if it has not ended within timeout seconds,
    kill its whole group and fail: a process that retries for ever is what these tests look for."""
    process = subprocess.Popen(command_line, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(f"{command_line[:6]} still running after {timeout} s:\n{stderr.decode(errors='replace')[-3000:]}")
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # anything it left behind
        except ProcessLookupError:
            pass
    return Finished(process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


def python(*arguments: str) -> list[str]:
    return [sys.executable, *arguments]
