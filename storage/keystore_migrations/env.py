"""Alembic's environment for the key store (storage/keystore.py), a database of its own: its own scripts,
and its own version table, `keystore_version`, never the main database's `alembic_version`, so that the
two cannot be taken for each other even if both were pointed at one database (the settings refuse that)."""
from __future__ import annotations

from alembic import context

from storage.db import make_engine
from storage.keystore import KeyStoreBase
from storage.migrate import KEY_STORE

config = context.config
database_url = config.attributes.get("database_url")


def run_migrations() -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=KeyStoreBase.metadata,
            version_table=KEY_STORE.version_table,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
