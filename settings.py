"""Every setting the hotline reads from its environment, read once and checked at start.

A production start with a missing secret stops here with a message naming the variable, rather than
failing on the first call of the night.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from ivr.handover import DEFAULT_TIMEZONE, Handover, OpeningHours, UnknownTimeZone

TWILIO_API_BASE = "https://api.twilio.com"
# A worker renews its job's lease every third of this; a dead worker's job is taken over when it runs out.
DEFAULT_JOB_LEASE_SECONDS = 30
# How often each Celery worker's sweeper re-announces due jobs (a lost message, a dead worker's job).
DEFAULT_JOB_SWEEP_SECONDS = 30
MIN_SECRET_LENGTH = 32
ENVIRONMENTS = ("production", "development", "test")
WORKER_MODES = ("inprocess", "celery", "off")
BLOB_STORES = ("database", "folder")
ANONYMOUS_TIMES = ("hour", "day")
QUESTION_VOICES = ("say", "espeak")  # how the line speaks a handler's question (ivr/flow.py)
# --- metrics (observability.py) ---
# Prometheus scrapes the line here; a private address, never the public port Twilio reaches.
DEFAULT_METRICS_ADDRESS = "127.0.0.1:9100"
# prometheus-client's own variable: gunicorn.conf.py sets it for the workers it forks (multiprocess mode).
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
LIMIT_STORES = ("auto", "memory", "redis")  # where the per-caller limit counts (ivr/limits.py)
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


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

    def secret(self, name: str, old_name: str | None = None) -> str | None:
        """A secret of at least MIN_SECRET_LENGTH characters, or None; under its old name too, if it had one."""
        value, old = self.text(name), self.text(old_name) if old_name else None
        if value and old and value != old:
            self.problems.append(f"{name} and {old_name} (its old name) are both set, to different values: keep one")
        given = name if value or not old else f"{old_name} ({name}'s old name)"
        value = value or old
        if value and len(value) < MIN_SECRET_LENGTH:
            self.problems.append(f"{given} must be at least {MIN_SECRET_LENGTH} characters "
                                 "(try: python -c 'import secrets; print(secrets.token_urlsafe(48))')")
        return value

    def fail_if_problems(self, who: str) -> None:
        if self.problems:
            raise ConfigError(f"{who} cannot start:\n  - " + "\n  - ".join(self.problems))


@dataclass(frozen=True)
class RetentionPolicy:
    """How long a case is kept once its outcome is known (storage/retention.py), in days from the status
    change that settled it: no further action (and closed after it), referred (and closed after it).
    New and in-review cases are never due. A lifted legal hold gives at least after_hold_days more."""

    no_further_action_days: int = 90
    referred_days: int = 365
    after_hold_days: int = 30


def read_retention(env: EnvReader) -> RetentionPolicy:
    """The retention settings, read alike by the workers (who purge) and the console (which shows what is due)."""
    return RetentionPolicy(
        no_further_action_days=env.integer("HOTLINE_RETAIN_NO_FURTHER_ACTION_DAYS", 90, maximum=36500),
        referred_days=env.integer("HOTLINE_RETAIN_REFERRED_DAYS", 365, maximum=36500),
        after_hold_days=env.integer("HOTLINE_RETAIN_AFTER_HOLD_DAYS", 30, maximum=36500),
    )


def read_key_store_url(env: EnvReader, data_dir: Path) -> str:
    """The period keys' store: not the main database, whose backups must not carry them (storage/keystore.py)."""
    url = env.text("HOTLINE_KEY_STORE_URL", f"sqlite:///{data_dir / 'keystore' / 'period-keys.db'}")
    database_url = env.text("DATABASE_URL", f"sqlite:///{data_dir / 'hotline.db'}")
    if url == database_url:
        env.problems.append("HOTLINE_KEY_STORE_URL must not be DATABASE_URL: backups of the database would "
                            "then carry the period keys, and deleting a case would not reach them")
    return url


def data_dir_from_env(environ: Mapping[str, str] | None = None) -> Path:
    """HOTLINE_DATA_DIR alone, for commands that run before the hotline is configured (fetching the model)."""
    return EnvReader(os.environ if environ is None else environ).data_dir()


# --- help on the line ------------------------------------------------------------------------------
MAX_SUPPORT_SERVICES = 8  # each is read slowly: more would keep a frightened caller on the line for minutes
SUPPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ',.&()-]{0,79}")
SUPPORT_NUMBER = re.compile(r"[0-9]{1,6}(?: [0-9]{1,6}){0,4}")  # the groups it is read out in
E164 = re.compile(r"\+[1-9][0-9]{7,14}")


def _support_services(env: EnvReader) -> tuple[tuple[str, str], ...] | None:
    """HOTLINE_SUPPORT_SERVICES="Name=0808 2000 247; Other name=116 123", read as "For Name, call ..."."""
    raw = env.text("HOTLINE_SUPPORT_SERVICES")
    if raw is None:
        return None
    services = []
    for entry in (part.strip() for part in raw.split(";")):
        name, _, number = (piece.strip() for piece in entry.partition("="))
        if not SUPPORT_NAME.fullmatch(name) or not SUPPORT_NUMBER.fullmatch(number) \
                or not 3 <= len(number.replace(" ", "")) <= 15:
            env.problems.append(f"HOTLINE_SUPPORT_SERVICES: {entry!r} is not 'Name=number' "
                                "(letters and simple punctuation, then 3 to 15 digits in groups, e.g. 'Samaritans=116 123')")
            continue
        services.append((name, number))
    if len(services) > MAX_SUPPORT_SERVICES:
        env.problems.append(f"HOTLINE_SUPPORT_SERVICES lists {len(services)} services; at most {MAX_SUPPORT_SERVICES}")
    return tuple(services) if services else None


def _line_help(env: EnvReader) -> dict:
    """The help branch's list and the live handover: all of a handover's settings, or none."""
    numbers = {name: env.text(name) for name in ("HOTLINE_HANDOVER_NUMBER", "HOTLINE_NUMBER")}
    for name, number in numbers.items():
        if number is not None and not E164.fullmatch(number):
            env.problems.append(f"{name} must be a phone number in international form, e.g. +441632960000")
    hours_text, hours = env.text("HOTLINE_OPENING_HOURS"), None
    if hours_text is not None:
        try:
            hours = OpeningHours.parse(hours_text, env.text("HOTLINE_TIMEZONE", DEFAULT_TIMEZONE))
        except ValueError as error:
            name = "HOTLINE_TIMEZONE" if isinstance(error, UnknownTimeZone) else "HOTLINE_OPENING_HOURS"
            env.problems.append(f"{name}: {error}")
    if numbers["HOTLINE_HANDOVER_NUMBER"] is not None or hours_text is not None:
        missing = [name for name, value in (*numbers.items(), ("HOTLINE_OPENING_HOURS", hours_text)) if value is None]
        if missing:
            env.problems.append("the live handover needs HOTLINE_HANDOVER_NUMBER, HOTLINE_NUMBER and "
                                f"HOTLINE_OPENING_HOURS together: {', '.join(missing)} not set")
    return dict(
        support_services=_support_services(env),
        handover_number=numbers["HOTLINE_HANDOVER_NUMBER"],
        hotline_number=numbers["HOTLINE_NUMBER"],
        opening_hours=hours,
        handover_ring_seconds=env.integer("HOTLINE_HANDOVER_RING_SECONDS", 30, minimum=5, maximum=600),
    )


@dataclass(frozen=True)
class Settings:
    """One secret per purpose, each only in the process that uses it (README, Configuration):

    - pin_key (HOTLINE_PIN_KEY) derives case PINs: the line's web process only. None elsewhere.
    - twilio_auth_token checks webhook signatures (the web process) and, unless an API key is given,
      authenticates the workers' REST calls; twilio_api_key_sid/_secret authenticate those calls instead.
    """

    environment: str
    public_base_url: str
    twilio_account_sid: str
    twilio_auth_token: str | None = field(repr=False)
    data_dir: Path
    database_url: str
    pin_key: str | None = field(repr=False)
    public_key_path: Path
    port: int = 5000
    twilio_api_base: str = TWILIO_API_BASE
    blob_store: str = "database"
    worker_mode: str = "inprocess"
    worker_threads: int = 1
    # Where the embedded worker listens when it runs beside gunicorn (jobs/worker_process.py); set by its master.
    worker_wake_socket: str | None = None
    broker_url: str | None = None
    twilio_api_key_sid: str | None = None
    twilio_api_key_secret: str | None = field(default=None, repr=False)
    vosk_model_path: str | None = None
    transcription: bool = True
    max_recording_seconds: int = 600
    job_max_attempts: int = 8
    transcription_max_attempts: int = 3
    retry_base_seconds: float = 5.0
    job_lease_seconds: int = DEFAULT_JOB_LEASE_SECONDS
    job_sweep_seconds: int = DEFAULT_JOB_SWEEP_SECONDS
    # How often workers list the recordings Twilio still holds and fetch or delete what callbacks missed (0: never).
    twilio_sweep_seconds: int = 600
    # How finely anything stored about an anonymous call is timed: "hour" or "day" (storage/anonymity.py).
    anonymous_time: str = "hour"
    # Period keys (storage/keystore.py) and retention (storage/retention.py). The key store's URL has a
    # default in from_env; "" here (tests that build Settings by hand) means items are sealed v2.
    key_store_url: str = ""
    retention: RetentionPolicy = RetentionPolicy()
    # How often workers purge the cases that are due and destroy spent period keys (0: never).
    purge_seconds: int = 3600
    # At most how often the purge runs also compact the SQLite file, when Twilio ids were erased or cases
    # purged since the last time (storage/compaction.py; 0: never).
    compact_seconds: int = 3600
    # --- metrics (observability.py): (host, port), or None for no endpoint; the folder where gunicorn's
    # workers leave their counts for the master to serve, or None outside gunicorn.
    metrics_address: tuple[str, int] | None = None
    metrics_multiprocess_dir: Path | None = None
    # --- limits (ivr/limits.py): calls per caller, counted under a daily keyed hash, never stored ---
    caller_limit: int = 10  # calls one number may make in a window (0: no limit)
    withheld_limit: int = 60  # calls all withheld numbers together may make in a window (0: no limit)
    limit_window_seconds: int = 3600
    flood_calls_per_minute: int = 60  # all calls together; over it, an alert (the calls are still answered)
    limit_store: str = "auto"  # "memory", "redis" (the broker's), or "auto": Redis when the broker is Redis
    # --- help on the line (support services, live handover) ---
    # Support services read in the help branch as (name, number); None: the list in ivr/prompts.py.
    support_services: tuple[tuple[str, str], ...] | None = None
    # The live handover is on when all three are set; the duty number is staff's own phone.
    handover_number: str | None = field(default=None, repr=False)
    hotline_number: str | None = None  # the hotline's own number: the callerId the handler sees
    opening_hours: OpeningHours | None = None
    handover_ring_seconds: int = 30
    # --- end of help on the line ---
    # --- questions: how the line speaks a handler's question: Twilio's <Say> (its speech service hears
    # the text), or "espeak", an offline voice whose audio the line serves (ivr/question_voice.py) ---
    question_voice: str = "say"

    @property
    def handover(self) -> Handover | None:
        if not (self.handover_number and self.hotline_number and self.opening_hours):
            return None
        return Handover(self.handover_number, self.hotline_number, self.opening_hours, self.handover_ring_seconds)

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def secret_key(self) -> str | None:
        """Deprecated: the PIN key's old name; use pin_key."""
        return self.pin_key

    @property
    def twilio_rest_auth(self) -> tuple[str, str]:
        """HTTP basic auth for Twilio's REST API: the API key if there is one, else the account's token."""
        if self.twilio_api_key_sid and self.twilio_api_key_secret:
            return self.twilio_api_key_sid, self.twilio_api_key_secret
        return self.twilio_account_sid, self.twilio_auth_token or ""

    def web_problems(self) -> list[str]:
        """What the line's web process needs beyond what every process needs."""
        problems = []
        if not self.pin_key:
            problems.append("HOTLINE_PIN_KEY is not set (the line's web process derives case PINs from it; "
                            "HOTLINE_SECRET_KEY, its old name, is read too)")
        if not self.twilio_auth_token:
            problems.append("TWILIO_AUTH_TOKEN is not set (the line's web process checks Twilio's signatures with it)")
        return problems

    def require_web(self) -> None:
        problems = self.web_problems()
        if problems:
            raise ConfigError("The line's web process cannot start:\n  - " + "\n  - ".join(problems))

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, web: bool = False) -> "Settings":
        """Every process's settings; web=True (the line's web process) also insists on the PIN key and
        the auth token. Workers and operators' commands need neither."""
        env = EnvReader(os.environ if environ is None else environ)
        problems = env.problems
        text, integer, choice = env.text, env.integer, env.choice

        environment = choice("HOTLINE_ENV", ENVIRONMENTS, "production")
        data_dir = env.data_dir()

        required = {
            "PUBLIC_BASE_URL": text("PUBLIC_BASE_URL"),
            "TWILIO_ACCOUNT_SID": text("TWILIO_ACCOUNT_SID"),
        }
        for name, value in required.items():
            if value is None:
                problems.append(f"{name} is not set")
        auth_token = text("TWILIO_AUTH_TOKEN")
        api_key_sid, api_key_secret = text("TWILIO_API_KEY_SID"), text("TWILIO_API_KEY_SECRET")
        if (api_key_sid is None) != (api_key_secret is None):
            problems.append("TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET go together: set both, or neither")
        elif api_key_sid is not None and not (api_key_sid.startswith("SK") and len(api_key_sid) == 34):
            problems.append("TWILIO_API_KEY_SID must be an API key's SID (SK followed by 32 characters)")
        if auth_token is None and api_key_secret is None and not web:  # the web process: web_problems()
            problems.append("TWILIO_AUTH_TOKEN is not set (workers may use TWILIO_API_KEY_SID and "
                            "TWILIO_API_KEY_SECRET instead; the web process needs the token)")
        pin_key = env.secret("HOTLINE_PIN_KEY", old_name="HOTLINE_SECRET_KEY")

        public_base_url = (required["PUBLIC_BASE_URL"] or "").rstrip("/")
        if public_base_url:
            parts = urlsplit(public_base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                problems.append("PUBLIC_BASE_URL must be an absolute http(s) URL, e.g. https://hotline.example.org")
            elif environment == "production" and parts.scheme != "https":
                problems.append("PUBLIC_BASE_URL must use https in production")
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
        # --- limits ---
        limit_store = choice("HOTLINE_LIMIT_STORE", LIMIT_STORES, "auto")
        if limit_store == "redis" and not (broker_url or "").startswith(REDIS_SCHEMES):
            problems.append("HOTLINE_LIMIT_STORE=redis needs CELERY_BROKER_URL or REDIS_URL to be a Redis URL")

        metrics_address, metrics_dir = metrics_from_env(env, environment)
        settings = cls(
            environment=environment,
            public_base_url=public_base_url,
            twilio_account_sid=required["TWILIO_ACCOUNT_SID"] or "",
            twilio_auth_token=auth_token,
            data_dir=data_dir,
            database_url=text("DATABASE_URL", f"sqlite:///{data_dir / 'hotline.db'}"),
            pin_key=pin_key,
            public_key_path=public_key_path,
            port=integer("PORT", 5000),
            twilio_api_base=text("TWILIO_API_BASE", TWILIO_API_BASE).rstrip("/"),
            blob_store=choice("HOTLINE_BLOB_STORE", BLOB_STORES, "database"),
            worker_mode=worker_mode,
            worker_threads=integer("HOTLINE_WORKER_THREADS", 1),
            worker_wake_socket=text(WORKER_WAKE_SOCKET_VARIABLE),
            broker_url=broker_url,
            twilio_api_key_sid=api_key_sid,
            twilio_api_key_secret=api_key_secret,
            vosk_model_path=text("VOSK_MODEL_PATH"),
            transcription=choice("HOTLINE_TRANSCRIPTION", ("on", "off"), "on") == "on",
            max_recording_seconds=integer("HOTLINE_MAX_RECORDING_SECONDS", 600, minimum=10),
            job_max_attempts=integer("HOTLINE_JOB_MAX_ATTEMPTS", 8),
            transcription_max_attempts=integer("HOTLINE_TRANSCRIPTION_MAX_ATTEMPTS", 3),
            job_lease_seconds=integer("HOTLINE_JOB_LEASE_SECONDS", DEFAULT_JOB_LEASE_SECONDS, minimum=2),
            job_sweep_seconds=integer("HOTLINE_SWEEP_SECONDS", DEFAULT_JOB_SWEEP_SECONDS),
            twilio_sweep_seconds=integer("HOTLINE_TWILIO_SWEEP_SECONDS", 600, minimum=0),
            anonymous_time=choice("HOTLINE_ANONYMOUS_TIME", ANONYMOUS_TIMES, "hour"),
            key_store_url=read_key_store_url(env, data_dir),
            retention=read_retention(env),
            purge_seconds=integer("HOTLINE_PURGE_SECONDS", 3600, minimum=0),
            compact_seconds=integer("HOTLINE_COMPACT_SECONDS", 3600, minimum=0),
            metrics_address=metrics_address,
            metrics_multiprocess_dir=metrics_dir,
            # --- limits ---
            caller_limit=integer("HOTLINE_CALLER_LIMIT", 10, minimum=0),
            withheld_limit=integer("HOTLINE_WITHHELD_LIMIT", 60, minimum=0),
            limit_window_seconds=integer("HOTLINE_LIMIT_WINDOW_SECONDS", 3600, minimum=10, maximum=24 * 3600),
            flood_calls_per_minute=integer("HOTLINE_FLOOD_CALLS_PER_MINUTE", 60, minimum=0),
            limit_store=limit_store,
            question_voice=choice("HOTLINE_QUESTION_VOICE", QUESTION_VOICES, "say"),  # --- questions ---
            **_line_help(env),
        )
        if web:
            problems += settings.web_problems()
        env.fail_if_problems("The line's web process" if web else "The hotline")
        return settings


# --- metrics (observability.py) ---------------------------------------------------------------------

def metrics_from_env(env: EnvReader, environment: str) -> tuple[tuple[str, int] | None, Path | None]:
    """HOTLINE_METRICS_ADDRESS (host:port, or "off"; the test environment serves none unless asked) and
    the multiprocess folder gunicorn.conf.py gave the workers."""
    raw = env.text("HOTLINE_METRICS_ADDRESS", "off" if environment == "test" else DEFAULT_METRICS_ADDRESS)
    folder = env.text(METRICS_DIR_VARIABLE)
    folder_path = Path(folder) if folder else None
    if raw.lower() == "off":
        return None, folder_path
    host, _, port = raw.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        env.problems.append(f"HOTLINE_METRICS_ADDRESS must be host:port (e.g. {DEFAULT_METRICS_ADDRESS}) or off, not {raw!r}")
        return None, folder_path
    return (host, int(port)), folder_path


def metrics_from_process_env() -> tuple[tuple[str, int] | None, Path | None]:
    """The metrics settings alone, for gunicorn's master (gunicorn.conf.py), which serves them before
    any worker has read the rest; a bad value is left for the workers' start to report."""
    env = EnvReader(os.environ)
    return metrics_from_env(env, env.choice("HOTLINE_ENV", ENVIRONMENTS, "production"))


def postgres_tools_environment(password: str | None) -> dict[str, str]:
    """The environment pg_dump and pg_restore run in (storage/backup.py): this process's, without any
    PG* variable of the operator's shell that would point them elsewhere, and with DATABASE_URL's
    password, which never goes on a command line where other users of the machine could read it."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    if password is not None:
        environment["PGPASSWORD"] = password
    return environment


def share_metrics_dir(folder: Path) -> None:
    """gunicorn's master, before it forks: each worker's prometheus-client reads the folder from here."""
    os.environ[METRICS_DIR_VARIABLE] = str(folder)


WORKER_WAKE_SOCKET_VARIABLE = "HOTLINE_WORKER_WAKE_SOCKET"


def worker_beside_gunicorn() -> bool:
    """gunicorn's master (gunicorn.conf.py), before any worker has read the rest: whether the line's
    embedded worker is wanted, and so runs beside the web processes (jobs/worker_process.py)."""
    return EnvReader(os.environ).choice("HOTLINE_WORKER", WORKER_MODES, "inprocess") == "inprocess"


def share_worker_wake_socket(path: str) -> dict[str, str]:
    """gunicorn's master, before it forks: every web process reads where to wake the worker from here.
    Returns the environment the worker's process is started with (this process's)."""
    os.environ[WORKER_WAKE_SOCKET_VARIABLE] = path
    return dict(os.environ)
