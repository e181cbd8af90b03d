"""People using the console in tests, as the story reads: `handler.signs_in()`, `handler.opens(url)`."""
from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from console.accounts.services import complete_enrolment, invite
from console.auth import totp
from storage.models import Role, User

CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


@dataclass
class Person:
    app: Flask
    username: str
    password: str
    totp_secret: str | None
    user_id: int
    role: Role
    client: FlaskClient = field(init=False)
    _last_step: int = field(default=-1, init=False)

    def __post_init__(self):
        self.client = self.app.test_client()

    def totp_code(self) -> str:
        """A fresh code: waits for the next 30-second step if this one was used already."""
        assert self.totp_secret
        step = int(time.time() // 30)
        while step <= self._last_step:
            time.sleep(0.2)
            step = int(time.time() // 30)
        self._last_step = step
        return pyotp.TOTP(self.totp_secret).at(step * 30)

    def get(self, url: str, **kwargs):
        return self.client.get(url, **kwargs)

    def post_form(self, page_url: str, data: dict, action: str | None = None, **kwargs):
        """Fetch the page for its CSRF token, then post the form (to `action`, or back to the page)."""
        page = self.client.get(page_url)
        form = {"csrf_token": csrf_token(page.get_data(as_text=True)), **data}
        return self.client.post(action or page_url, data=form, **kwargs)

    def signs_in(self, password: str | None = None, code: str | None = None):
        response = self.post_form("/sign-in", {"username": self.username, "password": password or self.password})
        if response.status_code != 302 or "/sign-in/second-factor" not in response.headers.get("Location", ""):
            return response
        return self.post_form("/sign-in/second-factor", {"code": code or self.totp_code()})

    def signs_out(self):
        page = self.client.get("/inbox")
        return self.client.post("/sign-out", data={"csrf_token": csrf_token(page.get_data(as_text=True))})


class People:
    def __init__(self, app: Flask, private_key):
        self.app, self.private_key = app, private_key
        self.console = app.extensions["console"]

    def make(self, role: Role, username: str | None = None, *, with_totp: bool = True) -> Person:
        username = username or f"{role.value}{secrets.token_hex(3)}"
        password = "pw-" + secrets.token_urlsafe(12)
        secret = totp.new_secret() if with_totp else None
        with self.console.db.session() as session:
            invitation = invite(session, self.private_key, username, username.title(), role, None, timedelta(hours=1))
            complete_enrolment(session, invitation.user, invitation.token, password, self.console.settings.kdf)
            if secret:
                totp.set_secret(invitation.user, secret, self.console.settings.secret_key)
            session.commit()
            user_id = invitation.user.id
        return Person(self.app, username, password, secret, user_id, role)

    def handler(self, username: str | None = None) -> Person:
        return self.make(Role.HANDLER, username)

    def supervisor(self, username: str | None = None) -> Person:
        return self.make(Role.SUPERVISOR, username)

    def admin(self, username: str | None = None) -> Person:
        return self.make(Role.ADMIN, username)

    def user(self, person: Person) -> User:
        with self.console.db.session() as session:
            return session.get(User, person.user_id)
