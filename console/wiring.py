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


@dataclass
class Console:
    settings: ConsoleSettings
    db: Database
    blobs: BlobStore
    sealer: Sealer  # notes and corrections are sealed to the same public key as everything else
    periods: KeyStore | None = None  # the period keys, which the signed-in handler's key opens


def build_console(settings: ConsoleSettings) -> Console:
    private_directory(settings.data_dir)  # 0700, as the line makes it: the database and blobs may be in it
    db = Database(settings.database_url)
    blobs = make_blob_store(settings.blob_store, settings.data_dir)
    periods = open_key_store(settings.key_store_url)
    return Console(settings, db, blobs, Sealer(load_public_key(settings.public_key_path), blobs, periods), periods)
