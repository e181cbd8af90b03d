"""Where an operator's `decrypt` writes a case's plaintext: a folder that did not exist before.

Plaintext on disk is the one thing the threat model forbids everywhere else, so this takes no chances:
- the folder must be new (an existing one, /tmp say, is refused and left exactly as it was), created
  0700 with a single mkdir, so no one else can have planted anything in it;
- it is then opened without following a symlink, and every file is created inside it through that
  handle, exclusively (O_EXCL) and without following symlinks (O_NOFOLLOW), 0600;
- file names are made here from the item's number and kind, never taken as they are from the
  database: a kind that is not a plain word becomes "item".
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

_KIND = re.compile(r"[a-z]{1,16}(?:-[a-z]{1,16}){0,3}")
_NAME = re.compile(r"[0-9a-z][0-9a-z.-]{0,80}")
_EXTENSIONS = {"recording": ".wav", "note": ".txt", "status-reason": ".txt", "reveal-reason": ".txt"}


class ExportRefused(Exception):
    """The folder cannot be written safely; the message says why."""


def item_file_name(item_id: int, kind: str) -> str:
    clean = kind if _KIND.fullmatch(kind) else "item"
    return f"{int(item_id):06d}-{clean}{_EXTENSIONS.get(clean, '.json')}"


class ExportFolder:
    """A new private folder, written through a handle on it. Use as a context manager."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            os.mkdir(self.path, 0o700)
        except FileExistsError:
            raise ExportRefused(f"{self.path} already exists: give a folder that does not exist yet "
                                "(decrypt writes only into a new folder of its own)") from None
        except FileNotFoundError:
            raise ExportRefused(f"the folder {self.path.parent} does not exist") from None
        self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        info = os.fstat(self._fd)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            self.close()
            raise ExportRefused(f"{self.path} changed while it was being created")

    def write(self, name: str, data: bytes) -> None:
        if not _NAME.fullmatch(name) or name in (".", ".."):
            raise ValueError(f"not a clean file name: {name!r}")
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=self._fd)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "ExportFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
