from __future__ import annotations

import pytest

from settings import ConfigError, Settings


def test_a_production_start_without_secrets_names_every_missing_variable(tmp_path):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"HOTLINE_DATA_DIR": str(tmp_path)}, web=True)
    message = str(error.value)
    for name in ("PUBLIC_BASE_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "HOTLINE_PIN_KEY"):
        assert f"{name} is not set" in message
    assert "public key" in message and "storage.keygen" in message


def test_values_are_checked_not_just_present(settings_env):
    bad = dict(settings_env, HOTLINE_ENV="production", PUBLIC_BASE_URL="http://hotline.test",
               HOTLINE_SECRET_KEY="short", PORT="eighty", HOTLINE_WORKER="celery")
    bad.pop("HOTLINE_PIN_KEY")  # the PIN key under its old name
    with pytest.raises(ConfigError) as error:
        Settings.from_env(bad)
    message = str(error.value)
    assert "https in production" in message
    assert "HOTLINE_SECRET_KEY (HOTLINE_PIN_KEY's old name) must be at least 32" in message
    assert "PORT must be a whole number" in message
    assert "needs CELERY_BROKER_URL or REDIS_URL" in message


def test_secrets_never_appear_in_the_settings_repr(settings_env):
    settings = Settings.from_env(settings_env)
    text = repr(settings)
    assert settings_env["TWILIO_AUTH_TOKEN"] not in text
    assert settings_env["HOTLINE_PIN_KEY"] not in text


def test_embedded_defaults(settings_env, data_dir):
    settings_env.pop("DATABASE_URL")
    settings = Settings.from_env(settings_env)
    assert settings.database_url == f"sqlite:///{data_dir / 'hotline.db'}"
    assert settings.blob_store == "database"
    assert settings.max_recording_seconds == 600
    assert settings.public_key_path == data_dir / "keys" / "hotline.pub"
    assert Settings.from_env(dict(settings_env, TWILIO_API_BASE="")).twilio_api_base == "https://api.twilio.com"
