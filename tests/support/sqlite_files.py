"""What a copy of the data folder would hold of a SQLite database: its file and its write-ahead log."""
from __future__ import annotations

from pathlib import Path

from storage.db import sqlite_file


def file_and_log_bytes(database_url: str) -> bytes:
    path = sqlite_file(database_url)
    return b"".join(Path(f"{path}{suffix}").read_bytes() for suffix in ("", "-wal") if Path(f"{path}{suffix}").exists())


def found_in_file_or_log(texts, database_url: str) -> list[str]:
    """Those of `texts` whose bytes are anywhere in the database file or its log."""
    data = file_and_log_bytes(database_url)
    return [text for text in texts if text.encode() in data]
