"""A process refuses to start on a database whose schema is not its code's (storage/migrate.py): behind
it (the release step not run), empty, or ahead of it (a newer release's migration, then the code rolled
back). One line says where the database is, where the code is, and what to run; never a password. The
line's web process, its embedded worker, the Celery workers and the console all refuse; `db upgrade`,
which fixes it, does not."""
from __future__ import annotations

import secrets

import pytest

from storage.migrate import (
    DATABASE,
    KEY_STORE,
    UPGRADE_COMMAND,
    SchemaMismatch,
    check_at_start,
    check_schema,
    revisions,
    upgrade_key_store,
)
from tests.support.processes import free_port, procfile_command
from tests.support.schema import (
    PASSWORD,
    head,
    previous,
    release_step,
    process_env,
    python,
    run_bounded,
    stamp_as,
    upgrade_to,
    with_password,
)

BOUNDED_SECONDS = 60  # a refusal takes a second or two; one that loops would take for ever


def refusal(url: str) -> str:
    with pytest.raises(SchemaMismatch) as refused:
        check_schema(url)
    message = str(refused.value)
    assert PASSWORD not in message and "\n" not in message  # one line, and no password
    return message


# --- the check itself, on each kind of database --------------------------------------------------------

def test_an_empty_database_is_refused_as_having_no_schema(database_url):
    url = with_password(database_url)
    message = refusal(url)
    assert "the database" in message and "no schema" in message
    assert f"end at {head()}" in message and f"`{UPGRADE_COMMAND}`" in message and "release step" in message
    if "postgresql" in url:
        assert "***@" in message  # which database, with its password hidden


def test_looking_at_a_sqlite_database_that_is_not_there_does_not_make_it(data_dir):
    path = data_dir / "nobody.db"
    assert "no schema" in refusal(f"sqlite:///{path}")
    assert not path.exists()


def test_a_database_a_revision_behind_is_refused_naming_both_revisions_and_the_fix(database_url):
    behind = previous()
    upgrade_to(database_url, DATABASE, behind)
    message = refusal(with_password(database_url))
    assert f"at revision {behind}, behind this code" in message and f"end at {head()}" in message
    assert f"Run `{UPGRADE_COMMAND}`" in message


def test_a_database_at_head_is_accepted(database_url):
    upgrade_to(database_url, DATABASE, "head")
    check_schema(with_password(database_url))
    found = revisions(database_url)
    assert found.at_head and found.current == (head(),) == found.heads


def test_a_database_ahead_of_the_code_is_refused_with_its_own_words(database_url):
    upgrade_to(database_url, DATABASE, "head")
    stamp_as(database_url, DATABASE, "9999_from_a_newer_release")
    message = refusal(with_password(database_url))
    assert "at revision 9999_from_a_newer_release, newer than this code" in message
    assert f"end at {head()}" in message and "run that release" in message
    assert f"Do not run `{UPGRADE_COMMAND}` with this code" in message  # it would fail on the unknown revision


def test_the_database_s_check_reads_its_own_version_table_only(database_url):
    # A key store's version table in the same database says nothing about the database's schema.
    upgrade_to(database_url, KEY_STORE, "head")
    assert "no schema" in refusal(database_url)
    upgrade_to(database_url, DATABASE, "head")
    check_schema(database_url)
    check_schema(database_url, KEY_STORE)


def test_a_database_server_that_cannot_be_reached_at_start_is_let_through_with_a_warning(captured_logs):
    url = f"postgresql+psycopg://hotline:{PASSWORD}@127.0.0.1:{free_port()}/hotline?connect_timeout=2"
    assert check_at_start(url) is False  # an outage is not a wrong schema: /healthz says 503 until it is back
    assert "could not reach the database" in captured_logs.text and PASSWORD not in captured_logs.text


def test_a_sqlite_database_that_cannot_be_opened_is_no_outage(tmp_path):
    from sqlalchemy.exc import OperationalError

    from storage.db import Database

    db = Database(f"sqlite:///{tmp_path / 'no-such-folder' / 'hotline.db'}")
    try:
        with pytest.raises(OperationalError):
            check_at_start(db.engine)
    finally:
        db.dispose()


# --- the processes: each refuses at start --------------------------------------------------------------

@pytest.fixture
def behind_settings(settings_env):
    """The test's settings, on a database migrated to the revision before the head (the release step of
    the newest migration not run), beside a key store at its head."""
    from settings import Settings

    settings = Settings.from_env(settings_env)  # not the `settings` fixture, which migrates to the head
    upgrade_to(settings.database_url, DATABASE, previous())
    upgrade_key_store(settings.key_store_url)
    return settings


def test_the_line_s_web_process_refuses_to_start(behind_settings):
    from app import create_app

    with pytest.raises(SchemaMismatch, match=f"at revision {previous()}, behind this code"):
        create_app(behind_settings, start_worker=True)


def test_the_operators_commands_refuse_except_db_upgrade_which_fixes_it(behind_settings):
    from app import create_app

    operators = create_app(behind_settings)  # `flask --app app ...`: built without refusing
    try:
        runner = operators.test_cli_runner()
        for args in (["jobs", "status"], ["cases"], ["jobs", "retry"]):
            refused = runner.invoke(args=args)
            assert refused.exit_code != 0 and f"`{UPGRADE_COMMAND}`" in refused.output, args
        upgraded = runner.invoke(args=["db", "upgrade"])
        assert upgraded.exit_code == 0, upgraded.output
        assert "database is up to date" in upgraded.output and "key store is up to date" in upgraded.output
        assert revisions(behind_settings.database_url).at_head
    finally:
        operators.extensions["hotline"].dispose()
    line = create_app(behind_settings, start_worker=True)  # and now the line starts
    line.extensions["hotline"].dispatcher.stop()
    line.extensions["hotline"].dispose()


def test_db_upgrade_makes_both_stores_from_nothing(settings_env):
    from settings import Settings

    settings = Settings.from_env(settings_env)  # not the `settings` fixture: nothing is migrated yet
    assert "no schema" in refusal(settings.database_url)
    release_step(settings)
    check_schema(settings.database_url)
    check_schema(settings.key_store_url, KEY_STORE)


def test_the_console_refuses_to_start(behind_settings, settings_env):
    from console import create_app
    from console.settings import ConsoleSettings

    console_settings = ConsoleSettings.from_env({**settings_env, "CONSOLE_SECRET_KEY": secrets.token_urlsafe(48)})
    with pytest.raises(SchemaMismatch, match=f"at revision {previous()}, behind this code"):
        create_app(console_settings, start_background=True)  # as the Procfile and scripts/run start it


def test_the_console_s_commands_refuse_except_db_upgrade_which_fixes_it(behind_settings, settings_env):
    from console import create_app
    from console.settings import ConsoleSettings

    console_settings = ConsoleSettings.from_env({**settings_env, "CONSOLE_SECRET_KEY": secrets.token_urlsafe(48)})
    runner = create_app(console_settings).test_cli_runner()  # `flask --app console ...`
    for args in (["keys", "status"], ["audit", "verify"]):
        refused = runner.invoke(args=args)
        assert refused.exit_code != 0 and f"`{UPGRADE_COMMAND}`" in refused.output, (args, refused.output)
    upgraded = runner.invoke(args=["db", "upgrade"])
    assert upgraded.exit_code == 0 and "key store is up to date" in upgraded.output, upgraded.output
    assert runner.invoke(args=["keys", "status"]).exit_code == 0


def test_the_worker_command_refuses_to_start(behind_settings, settings_env):
    finished = run_bounded(python("-m", "flask", "--app", "app", "jobs", "work"),
                           process_env(settings_env, HOTLINE_WORKER="inprocess"), BOUNDED_SECONDS)
    assert finished.returncode != 0
    assert f"at revision {previous()}, behind this code" in finished.stderr
    assert f"`{UPGRADE_COMMAND}`" in finished.stderr and "Traceback" not in finished.stderr
    assert "worker running" not in finished.stdout


def test_a_celery_worker_refuses_to_start_before_it_forks_its_pool(behind_settings, settings_env):
    # Its broker is nowhere: the check comes first, so the worker never gets as far as looking for it.
    broker = f"redis://127.0.0.1:{free_port()}/0"
    finished = run_bounded(python("-m", "celery", "--app", "jobs.celery_app", "worker", "--concurrency", "1",
                                  "--pool", "prefork", "--loglevel", "INFO"),
                           process_env(settings_env, HOTLINE_WORKER="celery", CELERY_BROKER_URL=broker), BOUNDED_SECONDS)
    assert finished.returncode != 0
    assert finished.stderr.count(f"at revision {previous()}, behind this code") == 1, finished.stderr[-3000:]
    assert "the Celery worker cannot start" in finished.stderr and "Traceback" not in finished.stderr


def test_the_line_under_gunicorn_as_the_procfile_runs_it_exits_with_the_message_once(behind_settings, settings_env):
    port = free_port()
    finished = run_bounded(procfile_command("web", port),
                           process_env(settings_env, HOTLINE_WORKER="inprocess", PORT=str(port)), BOUNDED_SECONDS)
    assert finished.returncode != 0
    output = finished.stderr
    assert output.count(f"at revision {previous()}, behind this code") == 1, output[-3000:]
    assert "the line cannot start" in output and f"`{UPGRADE_COMMAND}`" in output
    assert "Traceback" not in output and "Booting worker" not in output  # the master refused: nothing forked
    assert "Listening at" not in output


def test_the_console_under_gunicorn_as_the_procfile_runs_it_exits_with_the_message_once(behind_settings, settings_env):
    port = free_port()
    line = procfile_command("console", port)
    line = [word.replace("$CONSOLE_PORT", str(port)) for word in line]
    finished = run_bounded(line, process_env(settings_env, CONSOLE_SECRET_KEY=secrets.token_urlsafe(48)),
                           BOUNDED_SECONDS)
    assert finished.returncode != 0
    output = finished.stderr
    assert output.count(f"at revision {previous()}, behind this code") == 1, output[-3000:]
    assert "the console cannot start" in output and "Traceback" not in output and "Booting worker" not in output
