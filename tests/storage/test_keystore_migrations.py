"""The key store's own migrations (storage/keystore_migrations/): `db upgrade` makes and upgrades it beside
the database, a store made before it had migrations is stamped rather than made again, and opening it
makes nothing: a store not at its head is refused as the database is."""
from __future__ import annotations

import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from storage.crypto import generate_private_key
from storage.crypto import raw_public_bytes
from storage.keystore import KeyStore, KeyStoreBase, KeySuccessor, PeriodKey, open_key_store
from storage.migrate import (
    KEY_STORE,
    KEY_STORE_TABLES,
    UPGRADE_COMMAND,
    SchemaMismatch,
    check_schema,
    revisions,
    upgrade_key_store,
)
from tests.support.schema import PASSWORD, head, previous, stamp_as, upgrade_to, with_password


@pytest.fixture
def key_store_url(request, database_url, data_dir) -> str:
    """A new, empty key store: a SQLite file in a folder not made yet (not the test line's own key store,
    which the `settings` fixture has migrated), and a PostgreSQL database of its own."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{data_dir / 'another-keystore' / 'period-keys.db'}"
    return request.getfixturevalue("postgres_server").new_database()


def tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def made_the_old_way(url: str, tables=None) -> None:
    """As KeyStore() made a store before it had migrations: metadata.create_all, no version table."""
    from storage.db import sqlite_file
    from storage.files import private_directory

    if (path := sqlite_file(url)) is not None:
        private_directory(path.parent)
    engine = create_engine(url, poolclass=NullPool)
    try:
        KeyStoreBase.metadata.create_all(engine, tables=tables)
    finally:
        engine.dispose()


def refused_opening(url: str) -> str:
    with pytest.raises(SchemaMismatch) as refused:
        open_key_store(url)  # as every process opens it
    message = str(refused.value)
    assert message.startswith("the key store (") and PASSWORD not in message and "\n" not in message
    return message


def keys_in(store: KeyStore) -> tuple[dict[str, bytes], dict[str, bytes]]:
    with store.session() as session:
        periods = {row.period: row.public_key for row in session.query(PeriodKey)}
        successors = {row.old_key: row.new_public for row in session.query(KeySuccessor)}
    return periods, successors


def test_upgrade_makes_exactly_the_tables_the_models_define(key_store_url):
    upgrade_key_store(key_store_url)
    assert tables(key_store_url) == KEY_STORE_TABLES | {"keystore_version"}  # never alembic_version
    engine = create_engine(key_store_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": KEY_STORE.version_table,
                                                                   "compare_type": True})
            assert compare_metadata(context, KeyStoreBase.metadata) == []
            assert inspect(connection).get_pk_constraint("period_keys")["name"] == "pk_period_keys"
            assert inspect(connection).get_pk_constraint("hotline_key_successors")["name"] == "pk_hotline_key_successors"
    finally:
        engine.dispose()
    check_schema(key_store_url, KEY_STORE)


def test_a_new_sqlite_key_store_s_folder_and_file_are_private(data_dir):
    from tests.test_at_rest import mode

    url = f"sqlite:///{data_dir / 'keystore' / 'period-keys.db'}"
    upgrade_key_store(url)
    assert mode(data_dir / "keystore") == 0o700 and mode(data_dir / "keystore" / "period-keys.db") == 0o600


def test_opening_a_new_store_makes_nothing_and_is_refused_until_upgraded(key_store_url):
    message = refused_opening(with_password(key_store_url))
    assert "no schema" in message and f"end at {head(KEY_STORE)}" in message and f"`{UPGRADE_COMMAND}`" in message
    assert tables(key_store_url) == set()
    upgrade_key_store(key_store_url)
    KeyStore(key_store_url).dispose()


def test_a_store_a_revision_behind_is_refused_and_upgraded(key_store_url):
    behind = previous(KEY_STORE)  # None while 0001 is the key store's only migration: behind is empty
    upgrade_to(key_store_url, KEY_STORE, behind)
    message = refused_opening(with_password(key_store_url))
    assert (f"at revision {behind}, behind this code" if behind else "no schema") in message
    upgrade_key_store(key_store_url)
    assert revisions(key_store_url, KEY_STORE).at_head
    KeyStore(key_store_url).dispose()


def test_a_store_ahead_of_the_code_is_refused(key_store_url):
    upgrade_key_store(key_store_url)
    stamp_as(key_store_url, KEY_STORE, "9999_from_a_newer_release")
    message = refused_opening(with_password(key_store_url))
    assert "at revision 9999_from_a_newer_release, newer than this code" in message


def test_a_store_made_the_old_way_is_stamped_by_the_upgrade_and_keeps_its_keys(key_store_url, hotline):
    made_the_old_way(key_store_url)
    old = KeyStore(key_store_url, check=False)
    old.public_key("2026-05", hotline.sealer.public_key)
    with old.session() as session:
        session.add(KeySuccessor(old_key="0" * 16, new_key="1" * 16, new_public=b"p" * 32, sealed_new_private=b"s"))
        session.commit()
    before = keys_in(old)
    old.dispose()
    assert "no schema" in refused_opening(key_store_url)  # tables, but no keystore_version

    upgrade_key_store(key_store_url)  # not "table period_keys already exists"
    assert "keystore_version" in tables(key_store_url)
    opened = KeyStore(key_store_url)
    try:
        assert keys_in(opened) == before and set(before[0]) == {"2026-05"}
    finally:
        opened.dispose()
    upgrade_key_store(key_store_url)  # and again: nothing to do


def test_db_upgrade_stamps_an_old_store_of_the_line_s(settings, settings_env, key_store_url):
    """The operator's command, on a line whose key store (SQLite or PostgreSQL) was made the old way."""
    from app import create_app
    from settings import Settings

    made_the_old_way(key_store_url)
    line_settings = Settings.from_env(dict(settings_env, HOTLINE_KEY_STORE_URL=key_store_url))
    with pytest.raises(SchemaMismatch, match="the key store"):
        create_app(line_settings, start_worker=True)
    operators = create_app(line_settings)
    try:
        result = operators.test_cli_runner().invoke(args=["db", "upgrade"])
        assert result.exit_code == 0 and "key store is up to date" in result.output, result.output
    finally:
        operators.extensions["hotline"].dispose()
    line = create_app(line_settings, start_worker=True)
    line.extensions["hotline"].dispatcher.stop()
    line.extensions["hotline"].dispose()


def test_the_console_s_db_upgrade_makes_the_key_store_too(settings, settings_env, key_store_url):
    """`flask --app console db upgrade` does what the line's does: a console on a new key store starts after it."""
    import secrets

    from console import create_app as create_console
    from console.settings import ConsoleSettings

    console_settings = ConsoleSettings.from_env({**settings_env, "CONSOLE_SECRET_KEY": secrets.token_urlsafe(48),
                                                 "HOTLINE_KEY_STORE_URL": key_store_url})
    with pytest.raises(SchemaMismatch, match="the key store"):
        create_console(console_settings, start_background=True)
    result = create_console(console_settings).test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0 and "key store is up to date" in result.output, result.output
    check_schema(key_store_url, KEY_STORE)  # at its head: the served console would start


def test_a_half_made_store_is_not_stamped(key_store_url):
    made_the_old_way(key_store_url, tables=[PeriodKey.__table__])  # as if stopped half way
    with pytest.raises(SchemaMismatch, match="has only some of its tables"):
        upgrade_key_store(key_store_url)
    assert "keystore_version" not in tables(key_store_url)


def test_the_line_and_the_console_refuse_a_key_store_behind(settings, settings_env):
    import secrets

    from app import create_app
    from console import create_app as create_console
    from console.settings import ConsoleSettings

    stamp_as(settings.key_store_url, KEY_STORE, "9999_from_a_newer_release")
    with pytest.raises(SchemaMismatch, match="the key store .* newer than this code"):
        create_app(settings, start_worker=True)
    console_settings = ConsoleSettings.from_env({**settings_env, "CONSOLE_SECRET_KEY": secrets.token_urlsafe(48)})
    with pytest.raises(SchemaMismatch, match="the key store .* newer than this code"):
        create_console(console_settings, start_background=True)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_key_store_backed_up_as_the_readme_says_comes_back_at_its_head(hotline, tmp_path):
    """README, Backup and restore: a copy with SQLite's backup API while the line runs, copied back with
    everything stopped. The copy carries keystore_version, so the restored store opens."""
    source = hotline.settings.key_store_url.removeprefix("sqlite:///")
    made = hotline.periods.public_key("2026-04", hotline.sealer.public_key)
    copy = tmp_path / "period-keys-backup.db"
    with sqlite3.connect(source) as live, sqlite3.connect(copy) as backup:
        live.backup(backup)
    restored_url = f"sqlite:///{tmp_path / 'restored' / 'period-keys.db'}"
    (tmp_path / "restored").mkdir(mode=0o700)
    with sqlite3.connect(copy) as backup, sqlite3.connect(restored_url.removeprefix("sqlite:///")) as restored:
        backup.backup(restored)
    assert revisions(restored_url, KEY_STORE).at_head
    store = KeyStore(restored_url)
    try:
        assert raw_public_bytes(store.public_key("2026-04", generate_private_key().public_key())) == raw_public_bytes(made)
    finally:
        store.dispose()
