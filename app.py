"""The hotline's application factory. Nothing is built at import time."""
from __future__ import annotations

import atexit
import logging
from dataclasses import dataclass, field

from flask import Flask, jsonify

from jobs.dispatch import Dispatcher, make_dispatcher
from jobs.recording import Workshop
from jobs.twilio_rest import TwilioRest
from settings import Settings
from storage.blobs import BlobStore, make_blob_store
from storage.cases import Sealer
from storage.crypto import load_public_key
from storage.db import Database
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


def build_hotline(settings: Settings) -> Hotline:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url)
    blobs = make_blob_store(settings.blob_store, settings.data_dir)
    sealer = Sealer(load_public_key(settings.public_key_path), blobs)
    twilio = TwilioRest(settings.twilio_api_base, settings.twilio_account_sid, settings.twilio_auth_token)
    workshop = Workshop(settings=settings, db=db, sealer=sealer, twilio=twilio)
    return Hotline(settings, db, blobs, sealer, workshop, make_dispatcher(settings, workshop))


def make_transcriber(settings: Settings) -> Transcriber | None:
    """The worker side's speech model, checked now so a missing or broken model stops the worker at
    start with a clear message instead of failing on the first report."""
    if not settings.transcription:
        return None
    return Transcriber(resolve_model_path(settings.vosk_model_path, settings.data_dir))


def create_app(settings: Settings | None = None, *, start_worker: bool = False) -> Flask:
    """The web app. start_worker=True (the web process) also starts the embedded worker."""
    settings = settings or Settings.from_env()
    _configure_logging()
    app = Flask(__name__)
    app.config.update(SECRET_KEY=settings.secret_key, HOTLINE_SETTINGS=settings, MAX_CONTENT_LENGTH=64 * 1024)
    hotline = build_hotline(settings)
    app.extensions["hotline"] = hotline

    from ivr.views import bp as ivr_bp

    app.register_blueprint(ivr_bp)

    @app.get("/healthz")
    def healthz():
        """503 only when this process cannot serve calls (no database). Jobs that gave up make the body
        say "jobs-failed" and name them, but still answer 200: a platform health check that saw 503
        would restart or unroute the web process, which fixes no job and makes Twilio's webhooks fail
        (each failure leaves the caller's number in Twilio's Debugger). Monitors alert on the body.
        Job ids, kinds and attempt counts only: nothing of a call (no SIDs, no times, no errors)."""
        from jobs.queue import failed_jobs

        if not hotline.db.is_reachable():
            return jsonify(status="database unreachable"), 503
        try:
            with hotline.db.session() as session:
                failed = [{"id": job.id, "kind": job.kind, "attempts": job.attempts} for job in failed_jobs(session)]
        except Exception:
            return jsonify(status="database unreachable"), 503
        return jsonify(status="jobs-failed" if failed else "ok", database="ok", failed_jobs=len(failed), failed=failed[:50])

    from cli import register_commands

    register_commands(app)
    if start_worker and settings.worker_mode == "inprocess":
        hotline.workshop.transcriber = make_transcriber(settings)
    if start_worker:
        hotline.dispatcher.start()
        atexit.register(hotline.dispatcher.stop)
    return app


def _configure_logging() -> None:
    # Our own messages only ever name ids and steps; request bodies are never logged anywhere.
    logger = logging.getLogger("hotline")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
