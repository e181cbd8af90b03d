"""One secret per purpose, each only where it is used.

- HOTLINE_PIN_KEY derives case PINs: only the line's web process needs it (HOTLINE_SECRET_KEY, its old
  name, is still read, so PINs already given out keep working).
- The line's Flask SECRET_KEY is not the PIN key: the line has no sessions, so it is random per process.
- Workers start without the PIN key. Their Twilio REST calls use an API key (TWILIO_API_KEY_SID and
  TWILIO_API_KEY_SECRET) or the auth token; checking webhook signatures needs the auth token.
"""
from __future__ import annotations

import secrets

import pytest

from settings import ConfigError, Settings
from storage.references import pin_for

API_KEY_SID = "SK" + "0" * 31 + "2"


@pytest.fixture
def database_url(data_dir) -> str:
    return f"sqlite:///{data_dir / 'hotline.db'}"  # about settings, not databases


@pytest.fixture
def worker_env(settings_env) -> dict[str, str]:
    """A worker's environment: no PIN key under either name."""
    return {name: value for name, value in settings_env.items() if name not in ("HOTLINE_PIN_KEY", "HOTLINE_SECRET_KEY")}


def test_the_line_s_flask_secret_is_not_the_pin_key(app, settings):
    assert settings.pin_key
    assert app.config["SECRET_KEY"] not in (settings.pin_key, settings.pin_key.encode())


def test_the_line_opens_no_session_and_sets_no_cookie(app):
    from flask import session
    from flask.sessions import NullSession

    with app.test_request_context("/healthz"):
        app.preprocess_request()
        assert isinstance(session._get_current_object(), NullSession)
    assert "Set-Cookie" not in app.test_client().get("/healthz").headers


def test_each_line_process_has_its_own_flask_secret(settings):
    from app import create_app

    apps = [create_app(settings) for _ in range(2)]
    assert apps[0].config["SECRET_KEY"] != apps[1].config["SECRET_KEY"]
    for app in apps:
        app.extensions["hotline"].db.dispose()


def test_workers_start_without_the_pin_key(worker_env, settings, monkeypatch):
    from wiring import build_hotline

    # `settings` has migrated the database and the key store: a worker refuses to start on any other.

    settings = Settings.from_env(worker_env)
    assert settings.pin_key is None
    hotline = build_hotline(settings)
    hotline.db.dispose()
    # The Celery worker builds its workshop from the environment, as a worker machine has it.
    from jobs import celery_app

    monkeypatch.setattr(celery_app, "_workshop", None)
    for name in ("HOTLINE_PIN_KEY", "HOTLINE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in dict(worker_env, HOTLINE_TRANSCRIPTION="off").items():
        monkeypatch.setenv(name, value)
    workshop = celery_app.worker_workshop()
    assert workshop.settings.pin_key is None
    workshop.db.dispose()


def test_the_operator_s_commands_run_without_the_pin_key(worker_env, settings):
    from app import create_app

    app = create_app(Settings.from_env(dict(worker_env, HOTLINE_TRANSCRIPTION="off")))
    try:
        assert app.test_cli_runner().invoke(args=["jobs", "run"]).output.strip() == "ran 0 jobs"
    finally:
        app.extensions["hotline"].db.dispose()


def test_the_web_process_will_not_start_without_the_pin_key_or_the_auth_token(worker_env, settings):
    from app import create_app

    with pytest.raises(ConfigError, match="HOTLINE_PIN_KEY"):
        create_app(Settings.from_env(worker_env), start_worker=True)
    with pytest.raises(ConfigError) as error:
        Settings.from_env({name: value for name, value in worker_env.items() if name != "TWILIO_AUTH_TOKEN"}
                          | {"TWILIO_API_KEY_SID": API_KEY_SID, "TWILIO_API_KEY_SECRET": "s" * 32}, web=True)
    assert "HOTLINE_PIN_KEY is not set" in str(error.value) and "TWILIO_AUTH_TOKEN is not set" in str(error.value)


def test_the_old_name_of_the_pin_key_still_gives_the_same_pins(worker_env):
    key = secrets.token_urlsafe(48)
    old = Settings.from_env(dict(worker_env, HOTLINE_SECRET_KEY=key))
    new = Settings.from_env(dict(worker_env, HOTLINE_PIN_KEY=key))
    assert old.pin_key == new.pin_key == key
    assert pin_for(old.pin_key, "12345674") == pin_for(new.pin_key, "12345674")
    assert Settings.from_env(dict(worker_env, HOTLINE_PIN_KEY=key, HOTLINE_SECRET_KEY=key)).pin_key == key
    with pytest.raises(ConfigError, match="HOTLINE_PIN_KEY and HOTLINE_SECRET_KEY"):
        Settings.from_env(dict(worker_env, HOTLINE_PIN_KEY=key, HOTLINE_SECRET_KEY=secrets.token_urlsafe(48)))
    with pytest.raises(ConfigError, match="HOTLINE_PIN_KEY must be at least 32"):
        Settings.from_env(dict(worker_env, HOTLINE_PIN_KEY="short"))


def test_the_console_refuses_its_secret_being_the_pin_key(settings_env):
    from console.settings import ConsoleSettings

    key = secrets.token_urlsafe(48)
    for name in ("HOTLINE_PIN_KEY", "HOTLINE_SECRET_KEY"):
        with pytest.raises(ConfigError, match="must differ"):
            ConsoleSettings.from_env(dict(settings_env, **{name: key}, CONSOLE_SECRET_KEY=key))


# --- Twilio: the auth token checks signatures; an API key can make the REST calls -------------------

def test_a_twilio_rest_credential_is_required_and_an_api_key_comes_whole(worker_env):
    no_token = {name: value for name, value in worker_env.items() if name != "TWILIO_AUTH_TOKEN"}
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN is not set"):
        Settings.from_env(no_token)
    with pytest.raises(ConfigError, match="TWILIO_API_KEY_SECRET"):
        Settings.from_env(dict(no_token, TWILIO_API_KEY_SID=API_KEY_SID))
    with pytest.raises(ConfigError, match="TWILIO_API_KEY_SID"):
        Settings.from_env(dict(no_token, TWILIO_API_KEY_SID="AC" + "1" * 32, TWILIO_API_KEY_SECRET="s" * 32))
    settings = Settings.from_env(dict(no_token, TWILIO_API_KEY_SID=API_KEY_SID, TWILIO_API_KEY_SECRET="s" * 32))
    assert settings.twilio_auth_token is None and "s" * 32 not in repr(settings)


def test_workers_fetch_and_delete_recordings_with_an_api_key(worker_env, settings, fake_twilio, monkeypatch):
    from jobs.worker import run_until_idle
    from tests.support.audio import phone_wav
    from tests.support.takes import recorded_take
    from wiring import build_hotline

    key_secret = secrets.token_hex(16)
    seen = []

    def api_key_only(request) -> bool:  # Twilio takes an API key's SID and secret as basic auth
        auth = request.authorization
        seen.append(auth.username if auth else None)
        return bool(auth and auth.username == API_KEY_SID and auth.password == key_secret)

    monkeypatch.setattr(fake_twilio, "_authenticated", api_key_only)
    env = {name: value for name, value in worker_env.items() if name != "TWILIO_AUTH_TOKEN"}
    worker = build_hotline(Settings.from_env(dict(env, TWILIO_API_KEY_SID=API_KEY_SID, TWILIO_API_KEY_SECRET=key_secret,
                                                  HOTLINE_TRANSCRIPTION="off")))
    try:
        recording_id, sid = recorded_take(worker, fake_twilio, phone_wav(1.0))
        assert run_until_idle(worker.workshop) == 1
        assert sid not in fake_twilio.recordings and set(seen) == {API_KEY_SID}
    finally:
        worker.db.dispose()
