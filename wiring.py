"""The line's and the workers' long-lived parts, built once per process and without Flask: the web app
(app.py), the operators' commands (cli.py) and the Celery workers (jobs/celery_app.py) all start here.
Nothing is built at import time.

Building them checks that the database and the key store are at this code's migrations' heads and
refuses to start (storage.migrate.SchemaMismatch) otherwise, so that a process on an old schema stops at
once with what to run, rather than answering every call with the apology. Only the operators' commands
build them unchecked (check_schema=False, app.py), because `db upgrade`, `backup` and `restore` must work
on any schema; cli.py checks for every other command before it runs (Hotline.check_schema)."""
from __future__ import annotations

from dataclasses import dataclass, field

from jobs.dispatch import Dispatcher, make_dispatcher
from jobs.recording import Workshop
from jobs.twilio_rest import TwilioRest
from settings import Settings
from storage.blobs import BlobStore, make_blob_store
from storage.cases import Sealer
from storage.crypto import load_public_key
from storage.anonymity import keep_times_coarse
from storage.db import Database
from storage.keystore import KeyStore, open_key_store
from storage.files import private_directory
from storage.migrate import check_at_start
from transcription.model import resolve_model_path
from transcription.recognizer import Transcriber


@dataclass
class Hotline:
    """The app's long-lived parts, kept in app.extensions["hotline"]."""

    settings: Settings
    db: Database
    blobs: BlobStore
    sealer: Sealer
    workshop: Workshop
    dispatcher: Dispatcher = field(repr=False)
    periods: KeyStore | None = None
    schema_checked: bool = field(default=False, repr=False)

    def check_schema(self) -> None:
        """Refuse (SchemaMismatch) unless the database, then the key store, are at this code's heads; once
        checked, have this month's period keys at hand (KeyStore.warm). Checked once per process."""
        if self.schema_checked:
            return
        check_at_start(self.db.engine)
        if self.periods is not None:
            self.periods.check_schema()
            self.periods.warm(self.sealer.public_key)
        self.schema_checked = True

    def warm_if_ready(self) -> None:
        """This month's period keys, made now if the key store is at its head; nothing otherwise (an
        operator's command before `db upgrade` has made the store). The database is not touched: `restore`
        must find its target as it was."""
        if self.periods is None:
            return
        try:
            self.periods.check_schema()
        except Exception:  # not made yet, or not there: the command that needs it will say
            return
        self.periods.warm(self.sealer.public_key)

    def dispose(self) -> None:
        """Let go of the database's and the key store's connections."""
        self.db.dispose()
        if self.periods is not None:
            self.periods.dispose()


def build_hotline(settings: Settings, *, check_schema: bool = True) -> Hotline:
    """The line's parts, checked against the schema (Hotline.check_schema): a mismatch raises, unless
    check_schema=False, only for the operators' commands, which check for themselves (cli.py) since
    `db upgrade` must get as far as upgrading. Either way, this month's period keys are made at once on a
    key store at its head."""
    private_directory(settings.data_dir)  # 0700: the database, and the folder blob store, live in it
    db = Database(settings.database_url)
    keep_times_coarse(db.sessions, settings.anonymous_time)  # no time of an anonymous call finer than allowed
    blobs = make_blob_store(settings.blob_store, settings.data_dir)
    periods = open_key_store(settings.key_store_url, check=False)  # checked with the database, just below
    sealer = Sealer(load_public_key(settings.public_key_path), blobs, periods)
    twilio = TwilioRest(settings.twilio_api_base, settings.twilio_account_sid, settings.twilio_rest_auth)
    workshop = Workshop(settings=settings, db=db, sealer=sealer, twilio=twilio)
    hotline = Hotline(settings, db, blobs, sealer, workshop, make_dispatcher(settings, workshop), periods)
    if not check_schema:
        # An operator's command (cli.py): `db upgrade` goes on to fix the schema, and every command that
        # needs it checks, and stops with the reason, before it runs.
        hotline.warm_if_ready()
        return hotline
    try:
        hotline.check_schema()
    except BaseException:
        hotline.dispose()
        raise
    return hotline


def make_transcriber(settings: Settings) -> Transcriber | None:
    """The worker side's speech model, checked now so a missing or broken model stops the worker at
    start with a clear message instead of failing on the first report."""
    if not settings.transcription:
        return None
    return Transcriber(resolve_model_path(settings.vosk_model_path, settings.data_dir))
