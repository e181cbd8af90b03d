"""What lands on disk is readable by the hotline's own user only: the data directory 0700, the SQLite
database and its -wal/-shm files 0600, the folder blob store's folders 0700 and files 0600, the keys
folder 0700. Whatever the umask (0022 here, the usual default, which gave 0755 and 0644 before)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from settings import Settings
from storage.migrate import upgrade_all
from tests.support.schema import release_step


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(autouse=True)
def usual_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def database_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'hotline.db'}"  # file modes are SQLite's question


@pytest.fixture
def fresh_env(settings_env, key_dir, tmp_path) -> dict[str, str]:
    """A data directory that does not exist yet, with the database in it (the embedded default)."""
    env = dict(settings_env, HOTLINE_DATA_DIR=str(tmp_path / "new" / "data"),
               HOTLINE_PUBLIC_KEY_FILE=str(key_dir / "hotline.pub"))
    env.pop("DATABASE_URL")
    return env


def _database_files(data_dir: Path) -> list[Path]:
    return [data_dir / name for name in ("hotline.db", "hotline.db-wal", "hotline.db-shm")]


def _write_a_row(db) -> None:
    from storage.cases import open_case

    with db.session() as session:
        open_case(session, anonymous=True)
        session.commit()


def test_the_line_creates_its_data_directory_and_database_private(fresh_env):
    from wiring import build_hotline

    settings = Settings.from_env(fresh_env)
    release_step(settings)
    assert mode(settings.data_dir) == 0o700
    key_store = settings.data_dir / "keystore"
    assert mode(key_store) == 0o700 and mode(key_store / "period-keys.db") == 0o600
    hotline = build_hotline(settings)
    try:
        _write_a_row(hotline.db)
        files = _database_files(settings.data_dir)
        assert all(path.exists() for path in files)
        assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
    finally:
        hotline.dispose()


def test_a_database_and_data_directory_made_before_are_tightened_at_start(fresh_env):
    from wiring import build_hotline

    settings = Settings.from_env(fresh_env)
    settings.data_dir.mkdir(parents=True)
    upgrade_all(settings.database_url, settings.key_store_url)
    for path in [settings.data_dir, *(path for path in _database_files(settings.data_dir) if path.exists())]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    hotline = build_hotline(settings)
    try:
        _write_a_row(hotline.db)
        assert mode(settings.data_dir) == 0o700
        assert all(mode(path) == 0o600 for path in _database_files(settings.data_dir))
    finally:
        hotline.db.dispose()


def test_a_shared_directory_is_never_tightened(tmp_path):
    """HOTLINE_DATA_DIR=/tmp by mistake must not make /tmp 0700 (decrypt --out did that to /tmp)."""
    from storage.files import private_directory

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    private_directory(shared)
    assert mode(shared) == 0o1777


def test_the_folder_blob_store_writes_private_files_and_folders(fresh_env, private_key):
    from console.keys import open_item
    from storage.cases import open_case
    from wiring import build_hotline

    settings = Settings.from_env(dict(fresh_env, HOTLINE_BLOB_STORE="folder"))
    release_step(settings)
    hotline = build_hotline(settings)
    try:
        with hotline.db.session() as session:
            case = open_case(session, anonymous=True)
            item = hotline.sealer.seal_item(session, case, "recording", b"audio")
            session.commit()
            assert open_item(session, private_key, hotline.blobs, item, periods=hotline.periods) == b"audio"
        root = settings.data_dir / "blobs"
        paths = [root, *root.rglob("*")]
        assert any(path.is_file() for path in paths)
        assert {str(path): mode(path) for path in paths} == {
            str(path): 0o700 if path.is_dir() else 0o600 for path in paths}
    finally:
        hotline.db.dispose()


def test_the_keys_folder_is_private(tmp_path):
    from storage.crypto import write_key_pair

    public, private = write_key_pair(tmp_path / "new" / "keys", "a passphrase long enough")
    assert mode(tmp_path / "new" / "keys") == 0o700
    assert mode(private) == 0o600


def test_the_console_creates_the_data_directory_private_too(fresh_env):
    import secrets

    from console.settings import ConsoleSettings
    from console.wiring import build_console

    settings = ConsoleSettings.from_env(dict(fresh_env, CONSOLE_SECRET_KEY=secrets.token_urlsafe(48)))
    console = build_console(settings, check_schema=False)  # as its operators' commands build it
    try:
        assert mode(settings.data_dir) == 0o700
    finally:
        console.db.dispose()
    release_step(Settings.from_env(fresh_env))
    console = build_console(settings)
    try:
        _write_a_row(console.db)
        assert all(mode(path) == 0o600 for path in _database_files(settings.data_dir))
    finally:
        console.db.dispose()
