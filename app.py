"""The line's web app: Twilio's webhooks and /healthz. Nothing is built at import time; the long-lived
parts come from wiring.py, which the workers and operators' commands build from too."""
from __future__ import annotations

import atexit
import logging
import secrets

from flask import Flask, jsonify
from flask.sessions import SessionInterface

from settings import Settings
from wiring import build_hotline, make_transcriber


def create_app(settings: Settings | None = None, *, start_worker: bool = False) -> Flask:
    """The web app. start_worker=True is the line's web process: it answers calls, so it will not start
    without the PIN key and the auth token, nor on a database or key store that is not at this code's
    migrations' head (storage.migrate.SchemaMismatch, naming both revisions and `db upgrade`), and it also
    starts the embedded worker. Without it (the operators' commands, which need neither), Twilio's
    webhooks are served only when both are set, and the schema is checked by each command that needs it
    (cli.py), since `db upgrade` itself, `backup` and `restore` must run on any schema."""
    settings = settings or Settings.from_env(web=start_worker)
    if start_worker:
        settings.require_web()
    _configure_logging()
    app = Flask(__name__)
    # The line keeps no sessions and signs nothing, so Flask's secret is random per process: never the
    # PIN key (it used to be), never any other key of ours.
    app.config.update(SECRET_KEY=secrets.token_bytes(32), HOTLINE_SETTINGS=settings, MAX_CONTENT_LENGTH=64 * 1024)
    app.session_interface = NoSessions()
    hotline = build_hotline(settings, check_schema=start_worker)
    app.extensions["hotline"] = hotline

    if not settings.web_problems():
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

    register_commands(app, create_app)
    # Metrics: every response counted, every webhook timed by step; served on the private address by the
    # line's web process (or, under gunicorn, by its master: observability.py).
    import observability

    observability.install(app)
    if start_worker and settings.worker_mode == "inprocess" and not settings.worker_wake_socket:
        hotline.workshop.transcriber = make_transcriber(settings)
    if start_worker:
        hotline.dispatcher.start()
        atexit.register(hotline.dispatcher.stop)
        app.extensions["hotline.metrics"] = observability.serve_web_process(settings, hotline.db)
    return app


class NoSessions(SessionInterface):
    """Flask's session, never opened: Twilio sends no cookie, and the line reads and sets none. Flask's own
    cookie session built its signer for every webhook (a twentieth of the line's CPU a webhook, under load)."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response) -> None:
        return None


def _configure_logging() -> None:
    # Our own messages only ever name ids and steps; request bodies are never logged anywhere.
    logger = logging.getLogger("hotline")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
