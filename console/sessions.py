"""Server-side sessions in the database, so several console processes share them.

The cookie holds one random token. The row's id is a hash of it, and the copy of the private key a
signed-in session holds is sealed under a second hash of it (console/keys.py), so a copy of the
database, without a live cookie, can neither open the key nor forge a session. Ending a session (sign-out,
idle time-out, the 12-hour limit, an admin, a disabled account) wipes that copy.
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from werkzeug.datastructures import CallbackDict

from console.keys import KeyUnwrapError, open_for_session, seal_for_session
from storage.db import Database
from storage.models import ConsoleSession, SessionEnd, SessionStage, User, utcnow

COOKIE_NAME = "hotline_console"
log = logging.getLogger("hotline.console.sessions")


def session_id_for(token: str) -> str:
    return sha256(b"session-id|" + token.encode()).hexdigest()


def key_secret_for(token: str) -> bytes:
    return sha256(b"session-key|" + token.encode()).digest()


@dataclass(frozen=True)
class SessionLimits:
    idle: timedelta
    absolute: timedelta

    def end_reason(self, row: ConsoleSession, now: datetime) -> SessionEnd | None:
        if row.stage is SessionStage.SIGNED_IN and row.signed_in_at and now - row.signed_in_at > self.absolute:
            return SessionEnd.TOO_LONG
        if now - row.last_seen_at > self.idle:
            return SessionEnd.IDLE
        return None


class ConsoleBrowserSession(CallbackDict, SessionMixin):
    """Flask's `session`: a small dict (CSRF token, WebAuthn challenge), plus who is signed in."""

    def __init__(self, token: str | None = None, row: ConsoleSession | None = None,
                 initial: dict | None = None, ended: SessionEnd | None = None):
        def on_update(_):
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.token = token
        self.user_id = row.user_id if row else None
        self.stage = row.stage if row else SessionStage.VISITOR
        self.signed_in_at = row.signed_in_at if row else None
        self.ended = ended  # set when this request's cookie belonged to a session that just ran out
        self.sealed_key = row.sealed_key if row else None
        self.modified = False
        self.rotate_to: str | None = None  # a new token after a change of privilege (sign-in)
        self.drop_cookie = False

    @property
    def row_id(self) -> str | None:
        return session_id_for(self.token) if self.token else None

    @property
    def is_signed_in(self) -> bool:
        return self.stage is SessionStage.SIGNED_IN and self.user_id is not None

    def private_key(self) -> X25519PrivateKey:
        if not self.token or self.sealed_key is None:
            raise KeyUnwrapError("this session holds no key")
        return open_for_session(self.sealed_key, key_secret_for(self.token), self.row_id)


class SessionStore:
    def __init__(self, db: Database, limits: SessionLimits):
        self.db, self.limits = db, limits

    def new_token(self) -> str:
        return secrets.token_urlsafe(32)

    def load(self, token: str) -> ConsoleBrowserSession:
        now = utcnow()
        with self.db.session() as session:
            row = session.get(ConsoleSession, session_id_for(token))
            if row is None:
                return ConsoleBrowserSession()
            if row.ended_at is not None:
                return ConsoleBrowserSession(ended=row.end_reason)
            reason = self.limits.end_reason(row, now)
            if reason is not None:
                was_signed_in = row.user_id is not None
                self._expire(session, row, reason, now)
                session.commit()
                return ConsoleBrowserSession(ended=reason if was_signed_in else None)
            try:
                data = json.loads(row.data or "{}")
            except ValueError:
                data = {}
            return ConsoleBrowserSession(token, row, data)

    def save(self, browser: ConsoleBrowserSession) -> None:
        now = utcnow()
        with self.db.session() as session:
            if browser.token is None:
                browser.token = self.new_token()
                session.add(ConsoleSession(id=browser.row_id, stage=SessionStage.VISITOR,
                                           data=json.dumps(dict(browser)), created_at=now, last_seen_at=now))
            else:
                values = {"last_seen_at": now}
                if browser.modified:
                    values["data"] = json.dumps(dict(browser))
                session.execute(update(ConsoleSession).where(
                    ConsoleSession.id == browser.row_id, ConsoleSession.ended_at.is_(None)).values(**values))
            session.commit()

    # --- changes of privilege -----------------------------------------------------------------------

    def _rotate(self, session: Session, browser: ConsoleBrowserSession) -> ConsoleSession:
        """A new token (and row) whenever privilege changes, so a token seen before sign-in is useless after."""
        now = utcnow()
        if browser.token is not None:
            old = session.get(ConsoleSession, browser.row_id)
            if old is not None:
                session.delete(old)
        browser.token = self.new_token()
        row = ConsoleSession(id=browser.row_id, data=json.dumps(dict(browser)), created_at=now, last_seen_at=now)
        session.add(row)
        return row

    def password_accepted(self, session: Session, browser: ConsoleBrowserSession, user: User,
                          private_key: X25519PrivateKey) -> None:
        """Password right: the key is unwrapped and held, sealed, until the second factor is given."""
        row = self._rotate(session, browser)
        row.user_id, row.stage = user.id, SessionStage.PASSWORD_OK
        row.sealed_key = seal_for_session(private_key, key_secret_for(browser.token), row.id)
        browser.user_id, browser.stage, browser.sealed_key = user.id, row.stage, row.sealed_key

    def second_factor_accepted(self, session: Session, browser: ConsoleBrowserSession) -> None:
        row = session.get(ConsoleSession, browser.row_id)
        if row is None or row.stage is not SessionStage.PASSWORD_OK:
            raise PermissionError("no password step to complete")
        sealed_key_private = open_for_session(row.sealed_key, key_secret_for(browser.token), row.id)
        user_id = row.user_id
        new_row = self._rotate(session, browser)
        new_row.user_id, new_row.stage, new_row.signed_in_at = user_id, SessionStage.SIGNED_IN, utcnow()
        new_row.sealed_key = seal_for_session(sealed_key_private, key_secret_for(browser.token), new_row.id)
        browser.user_id, browser.stage, browser.sealed_key = user_id, new_row.stage, new_row.sealed_key
        browser.signed_in_at = new_row.signed_in_at

    def sign_out(self, session: Session, browser: ConsoleBrowserSession) -> None:
        row = session.get(ConsoleSession, browser.row_id) if browser.token else None
        if row is not None:
            self._end(session, row, SessionEnd.SIGNED_OUT, utcnow())
        browser.clear()
        browser.token, browser.user_id, browser.stage, browser.sealed_key = None, None, SessionStage.VISITOR, None
        browser.drop_cookie = True

    def end_for_user(self, session: Session, user_id: int, reason: SessionEnd, keep_row_id: str | None = None) -> int:
        """End every live session of one account (an admin's order, a disabled account, a new password)."""
        rows = session.scalars(select(ConsoleSession).where(
            ConsoleSession.user_id == user_id, ConsoleSession.ended_at.is_(None))).all()
        ended = 0
        for row in rows:
            if row.id != keep_row_id:
                self._end(session, row, reason, utcnow())
                ended += 1
        return ended

    def end_expired(self) -> int:
        """End every session past its limits, whether or not its cookie ever comes back, so a handler
        who walks away leaves no copy of the key behind (run at intervals by SessionSweeper)."""
        now = utcnow()
        with self.db.session() as session:
            rows = session.scalars(select(ConsoleSession).where(
                ConsoleSession.ended_at.is_(None),
                (ConsoleSession.last_seen_at < now - self.limits.idle)
                | (ConsoleSession.signed_in_at < now - self.limits.absolute))).all()
            ended = 0
            for row in rows:
                reason = self.limits.end_reason(row, now)
                if reason is not None:
                    self._expire(session, row, reason, now)
                    ended += 1
            session.commit()
            return ended

    def _expire(self, session: Session, row: ConsoleSession, reason: SessionEnd, now: datetime) -> None:
        if row.user_id is not None:
            from console.audit.services import record
            from storage.models import AuditAction

            record(session, AuditAction.SESSION_EXPIRED, actor=row.user, detail={"reason": reason.value})
        self._end(session, row, reason, now)

    @staticmethod
    def _end(session: Session, row: ConsoleSession, reason: SessionEnd, now: datetime) -> None:
        row.sealed_key, row.data, row.ended_at, row.end_reason = None, "{}", now, reason

    def purge_ended(self, older_than: timedelta = timedelta(days=1)) -> int:
        """Forget ended and abandoned sessions (they hold no key already)."""
        cutoff = utcnow() - older_than
        with self.db.session() as session:
            result = session.execute(delete(ConsoleSession).where(
                (ConsoleSession.ended_at < cutoff) | (ConsoleSession.last_seen_at < cutoff)))
            session.commit()
            return result.rowcount or 0


class SessionSweeper:
    """Ends run-out sessions (wiping their key) and forgets old ended ones, at intervals, in the
    background of a console process."""

    def __init__(self, store: SessionStore, interval_seconds: float = 60):
        self.store, self.interval = store, interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> None:
        try:
            self.store.end_expired()
            self.store.purge_ended()
        except Exception as error:  # a database blip must not stop the console; the next sweep retries
            log.warning("could not sweep expired sessions (%s)", type(error).__name__)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="session-sweeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.sweep()
        while not self._stop.wait(self.interval):
            self.sweep()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class DatabaseSessionInterface(SessionInterface):
    def __init__(self, store: SessionStore, secure_cookie: bool):
        self.store, self.secure_cookie = store, secure_cookie

    def open_session(self, app: Flask, request: Request) -> ConsoleBrowserSession:
        token = request.cookies.get(COOKIE_NAME)
        if not token or len(token) > 100:
            return ConsoleBrowserSession()
        return self.store.load(token)

    def save_session(self, app: Flask, session: ConsoleBrowserSession, response: Response) -> None:
        if session.drop_cookie:
            response.delete_cookie(COOKIE_NAME, path="/", secure=self.secure_cookie, httponly=True, samesite="Strict")
            return
        if session.token is None and not session.modified:
            return  # a visitor who was given no form needs no session
        self.store.save(session)
        response.set_cookie(COOKIE_NAME, session.token, path="/", secure=self.secure_cookie, httponly=True,
                            samesite="Strict")
