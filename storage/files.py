"""Folders and files the hotline keeps on disk (the data directory, the SQLite database and its -wal and
-shm files, the folder blob store, the keys folder): readable by the hotline's own user only, whatever
the umask. Folders 0700, files 0600.

Sealed bytes open only with the private key, but the database also holds what is not sealed (case
references, the audit trail, lock-out counts), and no one else on the machine has any business reading
either.
"""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("hotline.storage")

PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


def private_directory(path: Path) -> Path:
    """Create the folder 0700 (missing parents as the system makes them), or tighten one of ours that
    others can read. A shared folder (sticky or writable by all, like /tmp) is never changed: it is
    left as it is, with a warning, because changing it would break everyone else using it."""
    path = Path(path)
    path.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(f"{path} is not a folder")
    if info.st_mode & 0o077:
        if info.st_mode & (stat.S_ISVTX | stat.S_IWOTH):
            log.warning("%s is a shared folder (others may read or write it); the hotline's data belongs "
                        "in a folder of its own", path)
        elif info.st_uid != os.geteuid():
            log.warning("%s belongs to another user and others may read it; it was left as it is", path)
        else:
            try:
                os.chmod(path, PRIVATE_FOLDER)
                log.info("%s was readable by others; it is now 0700", path)
            except OSError as error:  # a read-only mount, say: the hotline can still run
                log.warning("%s is readable by others and could not be made 0700 (%s)", path, type(error).__name__)
    return path


def private_subfolder(path: Path) -> Path:
    """A folder inside one already private (the blob store's), created 0700 if it is missing."""
    try:
        os.mkdir(path, PRIVATE_FOLDER)
    except FileExistsError:
        pass
    return path


def tighten_file(path: Path) -> None:
    """An existing file of ours that others can read becomes 0600 (a missing one is left missing)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077 and info.st_uid == os.geteuid():
        try:
            os.chmod(path, PRIVATE_FILE)
        except OSError as error:
            log.warning("%s is readable by others and could not be made 0600 (%s)", path, type(error).__name__)


def create_private_file(path: Path) -> None:
    """Create an empty file 0600 unless it exists (never through a symlink)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE))
    except FileExistsError:
        pass
