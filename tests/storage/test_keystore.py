"""The key store: apart from the database, so that its backups do not carry the period keys; one key per
period however many processes make it at once; and the line keeps public keys only."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from settings import ConfigError, Settings
from storage.crypto import public_key_fingerprint, raw_public_bytes
from storage.db import sqlite_file
from storage.keystore import KeyStore
from storage.migrate import upgrade_key_store


def test_the_period_keys_are_not_in_the_database(hotline):
    assert "period_keys" not in inspect(hotline.db.engine).get_table_names()
    assert hotline.settings.key_store_url != hotline.settings.database_url
    assert hotline.periods.db.url == hotline.settings.key_store_url


def test_the_key_store_may_not_be_the_database(settings_env):
    with pytest.raises(ConfigError, match="HOTLINE_KEY_STORE_URL must not be DATABASE_URL"):
        Settings.from_env(dict(settings_env, HOTLINE_KEY_STORE_URL=settings_env["DATABASE_URL"]))


@pytest.fixture
def key_store_url(request, database_url, data_dir) -> str:
    """A key store on SQLite, and on a PostgreSQL database of its own."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{data_dir / 'period-keys.db'}"
    return request.getfixturevalue("postgres_server").new_database()


def test_processes_making_a_period_s_key_at_once_get_the_same_one(key_store_url, hotline):
    upgrade_key_store(key_store_url)
    stores = [KeyStore(key_store_url) for _ in range(4)]
    found, barrier = [], threading.Barrier(len(stores))

    def make(store):
        barrier.wait()
        found.append(raw_public_bytes(store.public_key("2026-05", hotline.sealer.public_key)))

    threads = [threading.Thread(target=make, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and len(found) == 4
    (row,) = stores[0].periods()
    assert row.hotline_key == public_key_fingerprint(hotline.sealer.public_key)
    assert raw_public_bytes(hotline.sealer.public_key) not in row.sealed_private  # sealed, not a copy
    for store in stores:
        store.dispose()


def test_a_period_key_opens_only_with_the_hotline_key(hotline, private_key):
    from console.keys import unwrap_period_private
    from storage.crypto import generate_private_key

    hotline.periods.public_key("2026-06", hotline.sealer.public_key)
    row = hotline.periods.get("2026-06")
    opened = unwrap_period_private(private_key, "2026-06", row.public_key, row.sealed_private)
    assert raw_public_bytes(opened.public_key()) == row.public_key
    from storage.crypto import SealError

    with pytest.raises(SealError):
        unwrap_period_private(generate_private_key(), "2026-06", row.public_key, row.sealed_private)
    with pytest.raises(SealError):  # passed off as another month's
        unwrap_period_private(private_key, "2026-07", row.public_key, row.sealed_private)


def test_processes_opening_a_new_key_store_at_once_are_refused_and_none_makes_its_tables(key_store_url):
    # gunicorn boots its workers together, and each opens the key store. Opening used to make the tables,
    # and they raced to; now only `db upgrade` (one process) makes them, and opening only looks.
    def open_at_once() -> tuple[list[KeyStore], list[str]]:
        stores, failures, barrier = [], [], threading.Barrier(8)

        def opens():
            barrier.wait()
            try:
                stores.append(KeyStore(key_store_url))
            except Exception as error:  # what a worker that failed to boot would have died of
                failures.append(type(error).__name__)

        threads = [threading.Thread(target=opens) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for store in stores:
            store.dispose()
        return stores, failures

    stores, failures = open_at_once()
    # Each refused with what to run, never with SQLite's "database is locked" (a new file switched to WAL
    # by several at once); a refused open made no file, so there is nothing to race on.
    assert stores == [] and failures == ["SchemaMismatch"] * 8
    if (path := sqlite_file(key_store_url)) is not None:
        assert not path.exists()
    engine = create_engine(key_store_url, poolclass=NullPool)
    try:
        assert inspect(engine).get_table_names() == []  # nothing made by opening
    finally:
        engine.dispose()
    upgrade_key_store(key_store_url)
    stores, failures = open_at_once()
    assert failures == [] and len(stores) == 8
