"""Where sealed bytes are kept. Web, workers and console may run on different machines, so the
default keeps blobs in the database (they commit, or roll back, with their case); a folder store is
there for a single machine that wants large recordings out of the database file."""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.files import PRIVATE_FILE, private_subfolder
from storage.models import BlobRow

_KEY = re.compile(r"[a-z]+(?:-[a-z]+)*/[0-9a-f]{32}")


class BlobMissing(Exception):
    pass


def new_blob_key(kind: str) -> str:
    return f"{kind}/{secrets.token_hex(16)}"


class BlobStore(Protocol):
    def put(self, session: Session, key: str, data: bytes) -> None: ...

    def get(self, session: Session, key: str) -> bytes: ...

    def delete(self, session: Session, key: str) -> None: ...


class DatabaseBlobStore:
    def put(self, session: Session, key: str, data: bytes) -> None:
        session.add(BlobRow(key=key, data=data))

    def get(self, session: Session, key: str) -> bytes:
        data = session.scalar(select(BlobRow.data).where(BlobRow.key == key))
        if data is None:
            raise BlobMissing(key)
        return data

    def delete(self, session: Session, key: str) -> None:
        session.execute(delete(BlobRow).where(BlobRow.key == key))


class FolderBlobStore:
    """Blobs as files, 0600 in folders 0700. Written before the database commit (a crash leaves only an
    unreferenced file)."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError("malformed blob key")
        return self.root / key

    def put(self, session: Session, key: str, data: bytes) -> None:
        path = self._path(key)
        private_subfolder(self.root)
        private_subfolder(path.parent)
        temporary = path.with_suffix(".partial")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, PRIVATE_FILE)  # a .partial left by a crash keeps whatever mode it had
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def get(self, session: Session, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as error:
            raise BlobMissing(key) from error

    def delete(self, session: Session, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def make_blob_store(kind: str, data_dir: Path) -> BlobStore:
    if kind == "folder":
        return FolderBlobStore(data_dir / "blobs")
    return DatabaseBlobStore()
