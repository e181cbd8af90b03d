"""The call handlers' console: its own app, process and host, and the only code that opens sealed items.

create_app(settings) builds it; nothing is built at import time. Every request passes one guard (deny by
default, see console/access.py); every response carries strict security headers and `no-store`.
"""
from __future__ import annotations

import atexit
import logging
import traceback
from datetime import timedelta

from flask import Flask, Response, current_app, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from console.access import Audience, policy_of, public
from console.settings import ConsoleSettings
from console.wiring import build_console
from storage.models import SessionEnd, SessionStage, User

log = logging.getLogger("hotline.console")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
BLUEPRINTS = (
    "console.auth.views",
    "console.accounts.views",
    "console.cases.views",
    "console.media.views",
    "console.audit.views",
    "console.questions.views",
    "console.referrals.views",
    "console.dashboard.views",
    "console.retention.views",
)


def db_session():
    """This request's database session (opened on first use, closed at the end of the request)."""
    if "db" not in g:
        g.db = current_app.extensions["console"].db.sessions()
    return g.db


def create_app(settings: ConsoleSettings | None = None, *, start_background: bool = False) -> Flask:
    settings = settings or ConsoleSettings.from_env()
    _configure_logging()
    # The served console (start_background, as the Procfile and scripts/run start it) refuses a database or
    # key store not at this code's heads (storage/migrate.py); its operators' commands do not check here.
    console = build_console(settings, check_schema=start_background)
    app = Flask(__name__, template_folder="templates", static_folder="static", static_url_path="/static")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        CONSOLE_SETTINGS=settings,
        MAX_CONTENT_LENGTH=256 * 1024,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session, which has its own limits
        WTF_CSRF_SSL_STRICT=False,  # Referer is never sent (Referrer-Policy: no-referrer); SameSite=Strict guards instead
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=not settings.is_development,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
    )
    app.extensions["console"] = console

    from console.sessions import DatabaseSessionInterface, SessionLimits, SessionStore

    console_sessions = SessionStore(
        console.db, SessionLimits(timedelta(minutes=settings.idle_minutes), timedelta(hours=settings.session_hours))
    )
    app.extensions["console_sessions"] = console_sessions
    app.session_interface = DatabaseSessionInterface(console_sessions, secure_cookie=not settings.is_development)

    # The guard runs before CSRF, so a form posted from a session that has run out gets the plain
    # "signed out" page, not a CSRF error.
    app.before_request(_guard)
    CSRFProtect(app)
    app.after_request(_security_headers)
    app.teardown_request(_close_db)
    _register_error_pages(app)

    import importlib

    for name in BLUEPRINTS:
        app.register_blueprint(importlib.import_module(name).bp)

    @app.get("/")
    def index():
        return redirect(url_for("cases.inbox"))

    @app.get("/healthz")
    @public
    def healthz():
        # Also the trivial page the console's benchmark measures the inbox against.
        if console.db.is_reachable():
            return {"status": "ok"}
        return {"status": "database unreachable"}, 503

    @app.context_processor
    def _template_globals():
        return {"current_user": g.get("user"), "settings": settings}

    from console.cli import register_commands

    register_commands(app)
    if start_background:
        from console.audit.services import HeadLogger

        head_logger = HeadLogger(console.db, settings.audit_head_seconds)
        head_logger.start()
        atexit.register(head_logger.stop)
        from console.sessions import SessionSweeper

        sweeper = SessionSweeper(console_sessions)
        sweeper.start()
        atexit.register(sweeper.stop)
    return app


def _guard():
    policy = policy_of(request.endpoint)
    if policy.audience is Audience.PUBLIC:
        return None
    ended = getattr(session, "ended", None)
    if ended is not None and ended is not SessionEnd.SIGNED_OUT:
        session.drop_cookie = True
        return _signed_out_page(ended)
    if policy.audience is Audience.SECOND_FACTOR:
        if session.stage is SessionStage.PASSWORD_OK and session.user_id is not None:
            user = db_session().get(User, session.user_id)
            if user is not None and user.disabled_at is None:
                g.pending_user = user
                return None
            _end_disabled_account_sessions(session.user_id)
        return _to_sign_in()
    if not session.is_signed_in:
        return _to_sign_in()
    user = db_session().get(User, session.user_id)
    if user is None or user.disabled_at is not None:
        _end_disabled_account_sessions(session.user_id)
        session.drop_cookie = True
        return _signed_out_page(SessionEnd.ACCOUNT_DISABLED)
    g.user = user
    if policy.role is not None and not user.role.at_least(policy.role):
        return render_template("console/error.html", title="Not for your role",
                               message="This page is for another role. Ask an admin if you need it."), 403
    return None


def _end_disabled_account_sessions(user_id: int) -> None:
    # However the account came to be disabled, its sessions end here and their key copies are wiped,
    # not left for an ex-handler who kept the cookie.
    db = db_session()
    current_app.extensions["console_sessions"].end_for_user(db, user_id, SessionEnd.ACCOUNT_DISABLED)
    db.commit()


def _to_sign_in():
    wants_json = request.accept_mimetypes.best == "application/json"
    if request.method == "GET" and not wants_json and not request.path.startswith("/media/"):
        return redirect(url_for("auth.sign_in"))
    return render_template("console/error.html", title="Please sign in",
                           message="You are not signed in."), 401


def _signed_out_page(reason: SessionEnd):
    settings: ConsoleSettings = current_app.config["CONSOLE_SETTINGS"]
    messages = {
        SessionEnd.IDLE: f"You were signed out after {settings.idle_minutes} minutes without activity.",
        SessionEnd.TOO_LONG: f"You were signed out: a session lasts at most {settings.session_hours} hours.",
        SessionEnd.ENDED_BY_ADMIN: "An administrator ended your session.",
        SessionEnd.ACCOUNT_DISABLED: "Your account is disabled.",
        SessionEnd.PASSWORD_CHANGED: "Your password was changed, so your other sessions were ended.",
    }
    return render_template("console/signed_out.html", message=messages.get(reason, "You were signed out.")), 401


def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
    settings: ConsoleSettings = current_app.config["CONSOLE_SETTINGS"]
    if not settings.is_development:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


def _close_db(_error=None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.rollback()
        db.close()


def _register_error_pages(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(_error):
        return render_template("console/error.html", title="Please try again",
                               message="That form had expired or was not sent from this console. "
                                       "Nothing was changed; go back, reload the page and try again."), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if request.path.startswith("/static/"):
            return error
        return render_template("console/error.html", title=error.name,
                               message=error.description or ""), error.code or 500

    @app.errorhandler(Exception)
    def server_error(error: Exception):
        # Type and stack only: messages can quote values, and values here can be report content.
        stack = "".join(traceback.format_tb(error.__traceback__))
        log.error("%s %s failed with %s\n%s", request.method, request.endpoint, type(error).__name__, stack)
        return render_template("console/error.html", title="Something went wrong",
                               message="Nothing was saved. Try again; if it happens again, tell an admin."), 500


def _configure_logging() -> None:
    logger = logging.getLogger("hotline")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
