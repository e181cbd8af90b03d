"""The console's settings, read once from the environment and checked at start.

The console needs no Twilio credentials and no PIN key: it reads the database, opens sealed items with a
signed-in handler's copy of the private key, and seals notes and corrections to the public key.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from console.keys import PasswordKdf
from settings import BLOB_STORES, ENVIRONMENTS, EnvReader, RetentionPolicy, read_key_store_url, read_retention

# Cheap enough for a test suite that signs in hundreds of times; refused outside HOTLINE_ENV=test.
TEST_KDF = PasswordKdf(time_cost=1, memory_kib=8 * 1024, parallelism=1)


@dataclass(frozen=True)
class ConsoleSettings:
    environment: str
    data_dir: Path
    database_url: str
    secret_key: str = field(repr=False)
    public_key_path: Path
    private_key_path: Path
    public_url: str
    port: int = 5001
    blob_store: str = "database"
    idle_minutes: int = 15
    session_hours: int = 12
    invite_hours: int = 72
    low_confidence: float = 0.6
    page_size: int = 50
    audit_head_seconds: int = 300
    vosk_model_path: str | None = None
    kdf: PasswordKdf = PasswordKdf()
    key_store_url: str = ""  # the period keys (storage/keystore.py); from_env always sets it
    retention: RetentionPolicy = RetentionPolicy()

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def rp_id(self) -> str:
        """WebAuthn's relying party: the console's host name (an IP address is not allowed)."""
        return urlsplit(self.public_url).hostname or "localhost"

    def with_overrides(self, **changes) -> "ConsoleSettings":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ConsoleSettings":
        env = EnvReader(os.environ if environ is None else environ)
        environment = env.choice("HOTLINE_ENV", ENVIRONMENTS, "production")
        data_dir = env.data_dir()
        secret_key = env.text("CONSOLE_SECRET_KEY") or ""
        if not secret_key:
            env.problems.append("CONSOLE_SECRET_KEY is not set (the console's own secret, not the line's HOTLINE_PIN_KEY)")
        elif len(secret_key) < 32:
            env.problems.append("CONSOLE_SECRET_KEY must be at least 32 characters")
        for pin_key in ("HOTLINE_PIN_KEY", "HOTLINE_SECRET_KEY"):  # the line's PIN key, and its old name
            if secret_key and secret_key == env.text(pin_key):
                env.problems.append(f"CONSOLE_SECRET_KEY must differ from {pin_key} (one secret per purpose)")
        port = env.integer("CONSOLE_PORT", 5001, maximum=65535)
        public_url = (env.text("CONSOLE_PUBLIC_URL") or f"http://localhost:{port}").rstrip("/")
        parts = urlsplit(public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            env.problems.append("CONSOLE_PUBLIC_URL must be an absolute http(s) URL, e.g. https://console.example.org")
        elif environment == "production" and parts.scheme != "https" and parts.hostname != "localhost":
            env.problems.append("CONSOLE_PUBLIC_URL must use https in production (or be http://localhost behind a tunnel)")
        public_key_path = Path(env.text("HOTLINE_PUBLIC_KEY_FILE", str(data_dir / "keys" / "hotline.pub"))).expanduser()
        if not public_key_path.is_file():
            env.problems.append(f"the hotline's public key {public_key_path} does not exist")
        private_key_path = Path(
            env.text("HOTLINE_PRIVATE_KEY_FILE", str(public_key_path.with_name("hotline.key")))
        ).expanduser()
        settings = cls(
            environment=environment,
            data_dir=data_dir,
            database_url=env.text("DATABASE_URL", f"sqlite:///{data_dir / 'hotline.db'}"),
            secret_key=secret_key,
            public_key_path=public_key_path,
            private_key_path=private_key_path,
            public_url=public_url,
            port=port,
            blob_store=env.choice("HOTLINE_BLOB_STORE", BLOB_STORES, "database"),
            idle_minutes=env.integer("CONSOLE_IDLE_MINUTES", 15, maximum=24 * 60),
            session_hours=env.integer("CONSOLE_SESSION_HOURS", 12, maximum=24 * 7),
            invite_hours=env.integer("CONSOLE_INVITE_HOURS", 72, maximum=24 * 30),
            low_confidence=env.number("CONSOLE_LOW_CONFIDENCE", 0.6, 0.0, 1.0),
            page_size=env.integer("CONSOLE_PAGE_SIZE", 50, maximum=500),
            audit_head_seconds=env.integer("CONSOLE_AUDIT_HEAD_SECONDS", 300),
            vosk_model_path=env.text("VOSK_MODEL_PATH"),
            kdf=TEST_KDF if environment == "test" else PasswordKdf(),
            key_store_url=read_key_store_url(env, data_dir),
            retention=read_retention(env),
        )
        env.fail_if_problems("The console")
        return settings
