"""Backups of the hotline's data, and restoring one: `flask --app app backup --out DIR` and `restore`.

A backup is a folder, 0700, of files 0600: the database (SQLite through its online backup API, which
copies a consistent snapshot while the line runs; PostgreSQL through `pg_dump -Fc` on an exported
snapshot), the folder blob store as a tar when blobs are kept on disk, and a manifest with each file's
SHA-256. Reports in it are as sealed as in the database: nothing is decrypted, and no key is copied
(the private key, its passphrase and the PIN key are backed up apart, by their holders).

Nor is the key store of the period keys (HOTLINE_KEY_STORE_URL, storage/keystore.py), by design: a
destroyed period key must not live on in the database's backups, or deleting a case would not reach
them. The operator backs the key store up on its own, to another place, keeping copies only a short
while; with the default SQLite store (README, Backup and restore):
    umask 077; python -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))' \
        "$HOTLINE_DATA_DIR/keystore/period-keys.db" /var/backups/hotline-keys/period-keys-YYYYMMDD.db
and with a PostgreSQL key store, `pg_dump --format=custom` of its database. A database backup restored
without the key store opens only items sealed before migration 0008 (v1, v2).

The database is copied first, then the blobs: a blob is written before the commit that refers to it,
so every blob the snapshot names is already on disk when the folder is read. Blob files go into the
tar with their times zeroed (a file's time is when its take was sealed, finer than the hour).

Restoring refuses a database that has any table, or a blob folder with anything in it, unless told to
overwrite; it checks the manifest's checksums first, and the restored case items' blobs afterwards.
"""
from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import tarfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, inspect, make_url, text

from settings import postgres_tools_environment
from storage.db import sqlite_file
from storage.files import PRIVATE_FILE, PRIVATE_FOLDER, create_private_file, private_directory

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite"
POSTGRES_FILE = "database.pgdump"
BLOBS_FILE = "blobs.tar"
_KIND = re.compile(r"[a-z]+(?:-[a-z]+)*")
_BLOB = re.compile(r"[a-z]+(?:-[a-z]+)*/[0-9a-f]{32}")  # storage/blobs.py's keys, nothing else
_CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why and what to do."""


@dataclass
class Summary:
    path: Path
    database: str  # "sqlite" | "postgresql"
    revision: str | None
    cases: int
    sealed_items: int
    blobs: int
    missing_blobs: int = 0
    files: dict[str, int] = field(default_factory=dict)


# --- backing up -----------------------------------------------------------------------------------------

def backup(database_url: str, blob_root: Path | None, out: Path, now: datetime | None = None) -> Summary:
    """A new backup folder inside `out` (made 0700 if missing); the database, the blob folder if any."""
    out = private_directory(Path(out))
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    folder = out / f"hotline-backup-{stamp}"
    try:
        os.mkdir(folder, PRIVATE_FOLDER)
    except FileExistsError:
        folder = out / f"hotline-backup-{stamp}-{secrets.token_hex(3)}"
        os.mkdir(folder, PRIVATE_FOLDER)
    try:
        if _is_sqlite(database_url):
            name, facts = SQLITE_FILE, _backup_sqlite(database_url, folder / SQLITE_FILE)
        else:
            name, facts = POSTGRES_FILE, _backup_postgres(database_url, folder / POSTGRES_FILE)
        files = [name]
        stored = set()
        if blob_root is not None:
            stored = _tar_blobs(blob_root, folder / BLOBS_FILE)
            files.append(BLOBS_FILE)
        missing = len(facts.pop("keys") - stored) if blob_root is not None else 0
        manifest = {
            "format": FORMAT,
            "database": "sqlite" if name == SQLITE_FILE else "postgresql",
            "revision": facts["revision"], "cases": facts["cases"], "sealed_items": facts["sealed_items"],
            "blobs": len(stored), "missing_blobs": missing, "taken": stamp,
            "files": {file: {"sha256": _sha256(folder / file), "bytes": (folder / file).stat().st_size} for file in files},
        }
        _write_private(folder / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # no half a backup that looks like a whole one
        raise
    return Summary(folder, manifest["database"], facts["revision"], facts["cases"], facts["sealed_items"],
                   len(stored), missing, {file: meta["bytes"] for file, meta in manifest["files"].items()})


def _is_sqlite(database_url: str) -> bool:
    return make_url(database_url).drivername.startswith("sqlite")


def _sqlite_path(database_url: str) -> Path:
    path = sqlite_file(database_url)
    if path is None:
        raise BackupError("only a SQLite database in a file can be backed up or restored (not one in memory)")
    return path


def _backup_sqlite(database_url: str, target: Path) -> dict:
    source_path = _sqlite_path(database_url)
    if not source_path.is_file():
        raise BackupError(f"there is no database at {source_path}")
    create_private_file(target)
    source = sqlite3.connect(source_path, timeout=30)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)  # page by page, a consistent snapshot, while webhooks and workers write
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        if copy.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError("the copy of the database failed SQLite's integrity check")
        return _facts(copy)
    finally:
        copy.close()
        source.close()


def _facts(connection) -> dict:
    """What the manifest says of a database, read through a DB-API connection (SQLite, or PostgreSQL's snapshot)."""
    def one(query: str):
        cursor = connection.cursor()
        try:
            cursor.execute(query)
            row = cursor.fetchone()
            return row[0] if row else None
        except Exception:
            return None
        finally:
            cursor.close()

    cursor = connection.cursor()
    try:
        cursor.execute("SELECT blob_key FROM sealed_items")
        keys = {row[0] for row in cursor.fetchall()}
    finally:
        cursor.close()
    return {"revision": one("SELECT version_num FROM alembic_version"), "cases": one("SELECT count(*) FROM cases") or 0,
            "sealed_items": len(keys), "keys": keys}


def _postgres_params(database_url: str) -> tuple[dict, dict]:
    """(libpq connection keywords without the password, environment for pg_dump/pg_restore with it):
    a password never goes on a command line, where any user of the machine could read it."""
    url = make_url(database_url)
    params = {key: value for key, value in {"host": url.host, "port": url.port, "user": url.username,
                                             "dbname": url.database}.items() if value is not None}
    params.update({key: str(value) for key, value in url.query.items()})
    return params, postgres_tools_environment(None if url.password is None else str(url.password))


def _conninfo(params: dict) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**{key: str(value) for key, value in params.items()})


def postgres_tool(name: str) -> str:
    """pg_dump or pg_restore: the newest in PostgreSQL's bin folders (a dump needs a pg_dump at least as
    new as the server), else the one on PATH."""
    def version(path: str) -> tuple:
        number = Path(path).parent.parent.name
        return tuple(int(part) for part in number.split(".") if part.isdigit())

    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=version)
    tool = found[-1] if found else shutil.which(name)
    if not tool:
        raise BackupError(f"PostgreSQL's {name} is not installed (apt-get install postgresql-client)")
    return tool


def _run_tool(command: list[str], env: dict, **kwargs) -> None:
    done = subprocess.run(command, env=env, stderr=subprocess.PIPE, **kwargs)
    if done.returncode != 0:
        # pg_dump's and pg_restore's messages name objects and connection problems, not rows.
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise BackupError(f"{Path(command[0]).name} failed: " + (message[-1] if message else f"exit status {done.returncode}"))


def _backup_postgres(database_url: str, target: Path) -> dict:
    import psycopg

    params, env = _postgres_params(database_url)
    with psycopg.connect(_conninfo(params), password=env.get("PGPASSWORD")) as connection:
        # The counts, the blob keys and the dump all read the one snapshot this transaction exports.
        connection.isolation_level, connection.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
        snapshot = connection.execute("SELECT pg_export_snapshot()").fetchone()[0]
        facts = _facts(connection)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as handle:
            _run_tool([postgres_tool("pg_dump"), "--format=custom", f"--snapshot={snapshot}", "--no-password",
                       f"--dbname={_conninfo(params)}"], env, stdout=handle)
        connection.rollback()
    return facts


def _tar_blobs(root: Path, target: Path) -> set[str]:
    """Every blob in the folder store (not a .partial a crash left), in key order, times zeroed."""
    keys = sorted(f"{path.parent.name}/{path.name}" for path in Path(root).glob("*/*") if path.is_file()
                  and _BLOB.fullmatch(f"{path.parent.name}/{path.name}")) if Path(root).is_dir() else []
    stored = set()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for key in keys:
            try:
                data = (Path(root) / key).read_bytes()
            except FileNotFoundError:  # deleted (a take discarded) since the database was copied
                continue
            info = tarfile.TarInfo(key)
            info.size, info.mode, info.mtime = len(data), PRIVATE_FILE, 0
            tar.addfile(info, io.BytesIO(data))
            stored.add(key)
        handle.flush()
        os.fsync(handle.fileno())
    return stored


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


# --- restoring ------------------------------------------------------------------------------------------

def read_manifest(folder: Path) -> dict:
    """The backup's manifest, with every file it lists checked against its SHA-256."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{folder} is not a hotline backup (no {MANIFEST})") from None
    except ValueError:
        raise BackupError(f"{folder / MANIFEST} is not readable JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise BackupError(f"{folder / MANIFEST} is not a backup manifest this version can read")
    for name, meta in manifest["files"].items():
        if name not in (SQLITE_FILE, POSTGRES_FILE, BLOBS_FILE):
            raise BackupError(f"the manifest lists an unexpected file {name!r}")
        path = folder / name
        if not path.is_file() or _sha256(path) != meta.get("sha256"):
            raise BackupError(f"{name} is missing or does not match its checksum: the backup is damaged")
    return manifest


def database_tables(database_url: str) -> list[str]:
    """The tables the database holds already (none: it is empty, safe to restore into)."""
    if _is_sqlite(database_url):
        path = _sqlite_path(database_url)
        if not path.exists() or path.stat().st_size == 0:
            return []
    engine = create_engine(database_url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _blob_folder_in_use(root: Path | None) -> bool:
    return root is not None and Path(root).is_dir() and any(Path(root).iterdir())


def restore(folder: Path, database_url: str, blob_root: Path | None, *, overwrite: bool = False) -> Summary:
    """Restore the backup in `folder` into the database and blob folder given (the line's own settings).

    Stop the line, its workers and the console first: they hold connections and would not see the
    swap. Without `overwrite`, a database with any table or a blob folder with anything in it is left
    untouched and the restore refused."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    kind = "sqlite" if _is_sqlite(database_url) else "postgresql"
    if manifest.get("database") != kind:
        raise BackupError(f"this is a backup of a {manifest.get('database')} database; DATABASE_URL names a {kind} one")
    has_blobs = BLOBS_FILE in manifest["files"]
    if has_blobs and blob_root is None:
        raise BackupError("this backup holds a folder blob store; set HOTLINE_BLOB_STORE=folder to restore it")
    tables = database_tables(database_url)
    if tables and not overwrite:
        raise BackupError(f"the database is not empty ({len(tables)} tables); restore into an empty one, "
                          "or pass --overwrite to replace everything in it")
    if _blob_folder_in_use(blob_root) and not overwrite:
        raise BackupError(f"the blob folder {blob_root} is not empty; pass --overwrite to replace it")

    staging = _unpack_blobs(folder / BLOBS_FILE, Path(blob_root)) if has_blobs else None
    try:
        if kind == "sqlite":
            _restore_sqlite(folder / SQLITE_FILE, database_url)
        else:
            _restore_postgres(folder / POSTGRES_FILE, database_url, clear=bool(tables))
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    if staging is not None:
        _swap_in(staging, Path(blob_root))
    elif overwrite and _blob_folder_in_use(blob_root):
        _swap_in(None, Path(blob_root))  # the backup's blobs are in its database: the old folder's are not this data's
    return _verify(folder, manifest, database_url, blob_root)


def _unpack_blobs(archive: Path, root: Path) -> Path:
    """The tar's blobs in a private folder beside the store, every name checked to be a blob key."""
    root.parent.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    staging = root.parent / f".blobs-restoring-{secrets.token_hex(4)}"
    os.mkdir(staging, PRIVATE_FOLDER)
    try:
        with tarfile.open(archive, mode="r:") as tar:
            for member in tar:
                if not member.isfile() or not _BLOB.fullmatch(member.name):
                    raise BackupError(f"{BLOBS_FILE} holds {member.name!r}, which is not a blob: the backup is not one of ours")
                kind_folder = staging / member.name.split("/")[0]
                if not kind_folder.is_dir():
                    os.mkdir(kind_folder, PRIVATE_FOLDER)
                source = tar.extractfile(member)
                fd = os.open(staging / member.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
                with os.fdopen(fd, "wb") as handle:
                    shutil.copyfileobj(source, handle, _CHUNK)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _swap_in(staging: Path | None, root: Path) -> None:
    old = None
    if root.exists():
        old = root.parent / f".blobs-replaced-{secrets.token_hex(4)}"
        os.rename(root, old)
    if staging is not None:
        os.rename(staging, root)
    else:
        os.mkdir(root, PRIVATE_FOLDER)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _restore_sqlite(copy: Path, database_url: str) -> None:
    target = _sqlite_path(database_url)
    target.parent.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    create_private_file(target)
    source = sqlite3.connect(f"{copy.resolve().as_uri()}?mode=ro", uri=True)
    destination = sqlite3.connect(target, timeout=30)
    try:
        source.backup(destination)  # replaces every page of the target in one step: all of it, or none
        destination.execute("PRAGMA journal_mode=WAL")  # as storage/db.py runs it
    finally:
        destination.close()
        source.close()


def _restore_postgres(dump: Path, database_url: str, *, clear: bool) -> None:
    params, env = _postgres_params(database_url)
    if clear:
        # Everything in the schema goes, tables a later migration made included; the dump brings its own.
        engine = create_engine(database_url)
        try:
            with engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        finally:
            engine.dispose()
    # One transaction: a restore that fails part-way leaves no table behind.
    _run_tool([postgres_tool("pg_restore"), "--single-transaction", "--exit-on-error", "--no-owner",
               "--no-privileges", "--no-password", f"--dbname={_conninfo(params)}", str(dump)], env)


def _verify(folder: Path, manifest: dict, database_url: str, blob_root: Path | None) -> Summary:
    """Count what came back, and look for each sealed item's blob where the line will look for it."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            cases = connection.execute(text("SELECT count(*) FROM cases")).scalar() or 0
            keys = set(connection.execute(text("SELECT blob_key FROM sealed_items")).scalars())
            if blob_root is None:
                present = set(connection.execute(text("SELECT key FROM sealed_blobs")).scalars())
            else:
                present = {key for key in keys if (Path(blob_root) / key).is_file()}
    finally:
        engine.dispose()
    files = {name: meta["bytes"] for name, meta in manifest["files"].items()}
    return Summary(folder, manifest["database"], revision, cases, len(keys), len(present & keys),
                   len(keys - present), files)
