"""The console's long-lived parts, built once per process without Flask (the CLI and tests use it too)."""
from __future__ import annotations

from dataclasses import dataclass

from console.settings import ConsoleSettings
from storage.blobs import BlobStore, make_blob_store
from storage.cases import Sealer
from storage.crypto import load_public_key
from storage.db import Database
from storage.keystore import KeyStore, open_key_store
from storage.files import private_directory
from storage.migrate import check_at_start


@dataclass
class Console:
    settings: ConsoleSettings
    db: Database
    blobs: BlobStore
    sealer: Sealer  # notes and corrections are sealed to the same public key as everything else
    periods: KeyStore | None = None  # the period keys, which the signed-in handler's key opens


def build_console(settings: ConsoleSettings, *, check_schema: bool = True) -> Console:
    """The console's parts. Unless check_schema=False (its operators' commands, console/__init__.py),
    refuses (storage.migrate.SchemaMismatch) a database or key store not at this code's heads, as the line
    does: run `flask --app app db upgrade`."""
    private_directory(settings.data_dir)  # 0700, as the line makes it: the database and blobs may be in it
    db = Database(settings.database_url)
    if check_schema:
        try:
            check_at_start(db.engine)
        except BaseException:
            db.dispose()
            raise
    blobs = make_blob_store(settings.blob_store, settings.data_dir)
    try:
        periods = open_key_store(settings.key_store_url, check=check_schema)
    except BaseException:
        db.dispose()
        raise
    return Console(settings, db, blobs, Sealer(load_public_key(settings.public_key_path), blobs, periods), periods)
