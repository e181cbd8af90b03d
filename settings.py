"""Every setting the hotline reads from its environment, read once and checked at start.

A production start with a missing secret stops here with a message naming the variable, rather than
failing on the first call of the night.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

TWILIO_API_BASE = "https://api.twilio.com"
ENVIRONMENTS = ("production", "development", "test")
WORKER_MODES = ("inprocess", "celery", "off")
BLOB_STORES = ("database", "folder")


class ConfigError(Exception):
    """The environment does not describe a hotline that can start."""


class EnvReader:
    """Reads variables and collects every problem, so one start names all of them at once."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or default

    def integer(self, name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name} must be a whole number, not {raw!r}")
            return default
        if value < minimum:
            self.problems.append(f"{name} must be at least {minimum}")
        if maximum is not None and value > maximum:
            self.problems.append(f"{name} must be at most {maximum}")
        return value

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name} must be a number, not {raw!r}")
            return default
        if not minimum <= value <= maximum:
            self.problems.append(f"{name} must be between {minimum} and {maximum}")
        return value

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self.text(name, default)
        if value not in options:
            self.problems.append(f"{name} must be one of {', '.join(options)}, not {value!r}")
            return default
        return value

    def data_dir(self) -> Path:
        return Path(self.text("HOTLINE_DATA_DIR", "instance")).expanduser().resolve()

    def fail_if_problems(self, who: str) -> None:
        if self.problems:
            raise ConfigError(f"{who} cannot start:\n  - " + "\n  - ".join(self.problems))


@dataclass(frozen=True)
class Settings:
    environment: str
    public_base_url: str
    twilio_account_sid: str
    twilio_auth_token: str = field(repr=False)
    data_dir: Path
    database_url: str
    secret_key: str = field(repr=False)
    public_key_path: Path
    port: int = 5000
    twilio_api_base: str = TWILIO_API_BASE
    blob_store: str = "database"
    worker_mode: str = "inprocess"
    worker_threads: int = 1
    broker_url: str | None = None
    vosk_model_path: str | None = None
    transcription: bool = True
    max_recording_seconds: int = 600
    job_max_attempts: int = 8
    transcription_max_attempts: int = 3
    retry_base_seconds: float = 5.0
    # A worker renews its job's lease every third of this; a dead worker's job is taken over when it runs out.
    job_lease_seconds: int = 30
    # How often workers list the recordings Twilio still holds and fetch or delete what callbacks missed (0: never).
    twilio_sweep_seconds: int = 600

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = EnvReader(os.environ if environ is None else environ)
        problems = env.problems
        text, integer, choice = env.text, env.integer, env.choice

        environment = choice("HOTLINE_ENV", ENVIRONMENTS, "production")
        data_dir = env.data_dir()

        required = {
            "PUBLIC_BASE_URL": text("PUBLIC_BASE_URL"),
            "TWILIO_ACCOUNT_SID": text("TWILIO_ACCOUNT_SID"),
            "TWILIO_AUTH_TOKEN": text("TWILIO_AUTH_TOKEN"),
            "HOTLINE_SECRET_KEY": text("HOTLINE_SECRET_KEY"),
        }
        for name, value in required.items():
            if value is None:
                problems.append(f"{name} is not set")

        public_base_url = (required["PUBLIC_BASE_URL"] or "").rstrip("/")
        if public_base_url:
            parts = urlsplit(public_base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                problems.append("PUBLIC_BASE_URL must be an absolute http(s) URL, e.g. https://hotline.example.org")
            elif environment == "production" and parts.scheme != "https":
                problems.append("PUBLIC_BASE_URL must use https in production")
        secret_key = required["HOTLINE_SECRET_KEY"] or ""
        if secret_key and len(secret_key) < 32:
            problems.append("HOTLINE_SECRET_KEY must be at least 32 characters (try: python -c 'import secrets; print(secrets.token_urlsafe(48))')")

        public_key_path = Path(text("HOTLINE_PUBLIC_KEY_FILE", str(data_dir / "keys" / "hotline.pub"))).expanduser()
        if not public_key_path.is_file():
            problems.append(
                f"the hotline's public key {public_key_path} does not exist "
                "(create a key pair with: python -m storage.keygen --dir DIR)"
            )

        worker_mode = choice("HOTLINE_WORKER", WORKER_MODES, "inprocess")
        broker_url = text("CELERY_BROKER_URL") or text("REDIS_URL")
        if worker_mode == "celery" and broker_url is None:
            problems.append("HOTLINE_WORKER=celery needs CELERY_BROKER_URL or REDIS_URL")

        settings = cls(
            environment=environment,
            public_base_url=public_base_url,
            twilio_account_sid=required["TWILIO_ACCOUNT_SID"] or "",
            twilio_auth_token=required["TWILIO_AUTH_TOKEN"] or "",
            data_dir=data_dir,
            database_url=text("DATABASE_URL", f"sqlite:///{data_dir / 'hotline.db'}"),
            secret_key=secret_key,
            public_key_path=public_key_path,
            port=integer("PORT", 5000),
            twilio_api_base=text("TWILIO_API_BASE", TWILIO_API_BASE).rstrip("/"),
            blob_store=choice("HOTLINE_BLOB_STORE", BLOB_STORES, "database"),
            worker_mode=worker_mode,
            worker_threads=integer("HOTLINE_WORKER_THREADS", 1),
            broker_url=broker_url,
            vosk_model_path=text("VOSK_MODEL_PATH"),
            transcription=choice("HOTLINE_TRANSCRIPTION", ("on", "off"), "on") == "on",
            max_recording_seconds=integer("HOTLINE_MAX_RECORDING_SECONDS", 600, minimum=10),
            job_max_attempts=integer("HOTLINE_JOB_MAX_ATTEMPTS", 8),
            transcription_max_attempts=integer("HOTLINE_TRANSCRIPTION_MAX_ATTEMPTS", 3),
            job_lease_seconds=integer("HOTLINE_JOB_LEASE_SECONDS", 30, minimum=2),
            twilio_sweep_seconds=integer("HOTLINE_TWILIO_SWEEP_SECONDS", 600, minimum=0),
        )
        env.fail_if_problems("The hotline")
        return settings
