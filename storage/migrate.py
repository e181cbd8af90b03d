"""Schema migrations (Alembic), run by `flask --app app db upgrade` and the Procfile's release step, and
the check that every long-lived process makes at start: the schema is the one this code was written for.

Two stores, each with migrations of its own: the database (storage/migrations/, version table
`alembic_version`) and the key store of the period keys (storage/keystore_migrations/, version table
`keystore_version`, so the two can never be taken for each other, even in one database).

A process that starts on a database behind its code (the release step not run) would answer every call
with the line's apology; one on a database ahead of it (a newer release's migration, then the code rolled
back) would do the same, or worse, write rows the newer schema does not expect. So the line, the workers
and the console refuse to start, with one line saying where the store is, where the code is, and what to
run (check_schema). The operators' `db upgrade`, `backup` and `restore` are the commands that must work
on any schema, and do not check.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.pool import NullPool

log = logging.getLogger("hotline.migrate")

MIGRATIONS = Path(__file__).with_name("migrations")
KEY_STORE_MIGRATIONS = Path(__file__).with_name("keystore_migrations")
UPGRADE_COMMAND = "flask --app app db upgrade"


@dataclass(frozen=True)
class Store:
    """One store's migrations: where its scripts are, and the table its revision is kept in."""

    name: str  # as the operator's messages name it
    scripts: Path
    version_table: str


DATABASE = Store("the database", MIGRATIONS, "alembic_version")
KEY_STORE = Store("the key store", KEY_STORE_MIGRATIONS, "keystore_version")
# The tables the key store's first migration (keystore_migrations/versions/0001) makes, which a store made
# before it had migrations (metadata.create_all) already has, with no version table: upgrade stamps it.
KEY_STORE_FIRST_REVISION = "0001"
KEY_STORE_TABLES = frozenset({"period_keys", "hotline_key_successors"})


class SchemaMismatch(RuntimeError):
    """A store's schema is not the one this code's migrations end at: the process must not start.
    The message is for the operator: one line, no password. (A RuntimeError, so that gunicorn's master,
    raising it from a hook, prints it as "Error: ..." and exits: gunicorn.conf.py.)"""

    def __init__(self, message: str, *, store: Store, current: tuple[str, ...], heads: tuple[str, ...]):
        super().__init__(message)
        self.store, self.current, self.heads = store, current, heads


@dataclass(frozen=True)
class Revisions:
    current: tuple[str, ...]  # the store's (empty: no schema)
    heads: tuple[str, ...]  # where this code's scripts end

    @property
    def at_head(self) -> bool:
        return set(self.current) == set(self.heads)


def alembic_config(database_url: str, store: Store = DATABASE) -> Config:
    config = Config()
    config.set_main_option("script_location", str(store.scripts))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """The database, to revision (its head by default)."""
    command.upgrade(alembic_config(database_url), revision)


def upgrade_key_store(key_store_url: str, revision: str = "head") -> None:
    """The key store, to revision. A store made before it had migrations (both tables, no version table)
    is stamped at its first revision rather than made again; a SQLite store's folder is made 0700 first,
    as opening it does (storage/keystore.py). One process does this (the release step), so processes
    opening a new store no longer race to make its tables."""
    from storage.db import prepare_sqlite_file, sqlite_file
    from storage.files import private_directory

    path = sqlite_file(key_store_url)
    if path is not None:
        private_directory(path.parent)
        prepare_sqlite_file(key_store_url)  # the file 0600 before SQLite makes it
    config = alembic_config(key_store_url, KEY_STORE)
    if _made_before_migrations(key_store_url):
        command.stamp(config, KEY_STORE_FIRST_REVISION)
        log.info("the key store's tables were made before it had migrations: stamped at %s", KEY_STORE_FIRST_REVISION)
    command.upgrade(config, revision)


def upgrade_all(database_url: str, key_store_url: str | None, say: Callable[[str], None] = lambda _line: None) -> None:
    """What `db upgrade` (the release step, the line's and the console's) does: the database, then the key
    store if there is one; say() hears each one done."""
    upgrade(database_url)
    say("database is up to date")
    if key_store_url:
        upgrade_key_store(key_store_url)
        say("key store is up to date")


def _made_before_migrations(key_store_url: str) -> bool:
    engine = _throwaway_engine(key_store_url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    if KEY_STORE.version_table in tables or not tables & KEY_STORE_TABLES:
        return False
    if not KEY_STORE_TABLES <= tables:
        raise SchemaMismatch(
            f"{KEY_STORE.name} ({_shown(key_store_url)}) has only some of its tables "
            f"({', '.join(sorted(tables & KEY_STORE_TABLES))}) and no {KEY_STORE.version_table} table: it was left "
            "half made; restore it from its backup (README, Backup and restore)",
            store=KEY_STORE, current=(), heads=script_heads(KEY_STORE))
    return True


@lru_cache(maxsize=None)
def _script_heads(scripts: Path) -> tuple[str, ...]:
    config = Config()
    config.set_main_option("script_location", str(scripts))
    return tuple(sorted(ScriptDirectory.from_config(config).get_heads()))


@lru_cache(maxsize=None)
def _known_revisions(scripts: Path) -> frozenset[str]:
    config = Config()
    config.set_main_option("script_location", str(scripts))
    return frozenset(script.revision for script in ScriptDirectory.from_config(config).walk_revisions())


def script_heads(store: Store = DATABASE) -> tuple[str, ...]:
    """Where this code's migrations end, read from the scripts (never written down anywhere else)."""
    return _script_heads(store.scripts)


def revisions(database: str | Engine, store: Store = DATABASE) -> Revisions:
    """The store's current revision(s) and the scripts' head(s): a look at the version table, no more.
    database is a URL or the process's own engine. A SQLite file that does not exist has no schema (and
    is not made by looking)."""
    heads = script_heads(store)
    if isinstance(database, str):
        from storage.db import sqlite_file

        path = sqlite_file(database)
        if path is not None and not path.exists():
            return Revisions((), heads)
        engine = _throwaway_engine(database)
        try:
            return Revisions(_current(engine, store), heads)
        finally:
            engine.dispose()
    return Revisions(_current(database, store), heads)


def _current(engine: Engine, store: Store) -> tuple[str, ...]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": store.version_table})
        return tuple(sorted(context.get_current_heads()))


def _throwaway_engine(database_url: str) -> Engine:
    # No pool: nothing stays connected (gunicorn's master checks before it forks its workers).
    return create_engine(database_url, poolclass=NullPool)


def _shown(database: str | Engine) -> str:
    url = database.url if isinstance(database, Engine) else make_url(database)
    return url.render_as_string(hide_password=True)


def _listed(revisions: tuple[str, ...]) -> str:
    return " and ".join(revisions) if revisions else "none"


def check_schema(database: str | Engine, store: Store = DATABASE) -> None:
    """Raise SchemaMismatch unless the store is at this code's head. A store that cannot be reached
    raises SQLAlchemy's error (see check_at_start)."""
    found = revisions(database, store)
    if found.at_head:
        return
    where = f"{store.name} ({_shown(database)})"
    wanted = f"this code's migrations end at {_listed(found.heads)}"
    if not found.current:
        message = (f"{where} has no schema ({store.version_table} is missing or empty); {wanted}. "
                   f"Run `{UPGRADE_COMMAND}` (the Procfile's release step), then start it again.")
    elif set(found.current) - _known_revisions(store.scripts):
        unknown = tuple(sorted(set(found.current) - _known_revisions(store.scripts)))
        message = (f"{where} is at revision {_listed(found.current)}, newer than this code: {_listed(unknown)} "
                   f"is not among its migrations ({wanted}). A newer release migrated it: run that release, "
                   f"or with that release's code downgrade {store.name} to {_listed(found.heads)} first. "
                   f"Do not run `{UPGRADE_COMMAND}` with this code.")
    else:
        message = (f"{where} is at revision {_listed(found.current)}, behind this code ({wanted}). "
                   f"Run `{UPGRADE_COMMAND}` (the Procfile's release step), then start it again.")
    raise SchemaMismatch(message, store=store, current=found.current, heads=found.heads)


def check_at_start(database: str | Engine, store: Store = DATABASE) -> bool:
    """check_schema for a process starting up. A store it cannot reach now is logged and let through
    (returns False): an outage of a database server is not a wrong schema, and the line then answers
    /healthz with 503 and comes back by itself with the database, as it always has. A SQLite file that
    cannot be opened is no outage and raises. A wrong schema raises SchemaMismatch."""
    try:
        check_schema(database, store)
    except (OperationalError, InterfaceError) as error:
        url = database.url if isinstance(database, Engine) else make_url(database)
        if url.get_backend_name() == "sqlite":
            raise  # a file of ours, not a server that may be down: a wrong path, a folder not there
        log.warning("could not reach %s to check its schema (%s); starting without the check",
                    store.name, type(error).__name__)
        return False
    return True


def check_stores_at_start(database_url: str, key_store_url: str | None) -> None:
    """Both stores of a process about to start (gunicorn's master, the Celery worker's main process),
    from their URLs, connecting to neither for longer than the look: the database first, then the key store."""
    check_at_start(database_url)
    if key_store_url:
        check_at_start(key_store_url, KEY_STORE)
