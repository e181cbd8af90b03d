"""The line's and the workers' long-lived parts, built once per process and without Flask: the web app
(app.py), the operators' commands (cli.py) and the Celery workers (jobs/celery_app.py) all start here.
Nothing is built at import time."""
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


def build_hotline(settings: Settings) -> Hotline:
    private_directory(settings.data_dir)  # 0700: the database, and the folder blob store, live in it
    db = Database(settings.database_url)
    keep_times_coarse(db.sessions, settings.anonymous_time)  # no time of an anonymous call finer than allowed
    blobs = make_blob_store(settings.blob_store, settings.data_dir)
    periods = open_key_store(settings.key_store_url)
    sealer = Sealer(load_public_key(settings.public_key_path), blobs, periods)
    if periods is not None:
        periods.warm(sealer.public_key)
    twilio = TwilioRest(settings.twilio_api_base, settings.twilio_account_sid, settings.twilio_rest_auth)
    workshop = Workshop(settings=settings, db=db, sealer=sealer, twilio=twilio)
    return Hotline(settings, db, blobs, sealer, workshop, make_dispatcher(settings, workshop), periods)


def make_transcriber(settings: Settings) -> Transcriber | None:
    """The worker side's speech model, checked now so a missing or broken model stops the worker at
    start with a clear message instead of failing on the first report."""
    if not settings.transcription:
        return None
    return Transcriber(resolve_model_path(settings.vosk_model_path, settings.data_dir))
