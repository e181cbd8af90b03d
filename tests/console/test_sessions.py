"""Server-side sessions: idle time-out and the absolute limit (both configurable), a plain "signed out"
page (never a CSRF error) once a session has run out, a new session id at each step of signing in, and
one session seen by every console process on the same database."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from console import create_app
from console.sessions import session_id_for
from console.settings import ConsoleSettings
from storage.models import AuditAction, AuditEntry, ConsoleSession, SessionEnd
from tests.console.support import People, skip_until_built

CSRF_PAGE_TEXT = "That form had expired or was not sent from this console"


@pytest.fixture
def console_with(console_env, settings, private_key):
    """Another console app on the same database, with some settings changed through the environment."""
    apps = []

    def build(**environment: str):
        app = create_app(ConsoleSettings.from_env({**console_env, **environment}))
        app.config["TESTING"] = True
        apps.append(app)
        return app, People(app, private_key)

    yield build
    for app in apps:
        app.extensions["console"].db.dispose()


@pytest.fixture(autouse=True)
def _needs_sign_in(console_app):
    skip_until_built(console_app, "auth.second_factor")


def signed_in(person):
    response = person.signs_in()
    assert response.status_code == 302 and response.headers["Location"].endswith("/inbox")
    return person


def is_signed_in(person) -> bool:
    return person.get("/account").status_code == 200


def signed_out_message(response) -> str:
    body = response.get_data(as_text=True)
    assert response.status_code == 401 and "signed-out-message" in body, (response.status_code, body[:300])
    assert CSRF_PAGE_TEXT not in body
    return body


def session_row(console, token: str) -> ConsoleSession | None:
    with console.db.session() as session:
        return session.get(ConsoleSession, session_id_for(token))


def test_the_limits_default_to_15_minutes_idle_and_12_hours_in_all(console_env, console_settings):
    assert (console_settings.idle_minutes, console_settings.session_hours) == (15, 12)
    changed = ConsoleSettings.from_env({**console_env, "CONSOLE_IDLE_MINUTES": "5", "CONSOLE_SESSION_HOURS": "2"})
    assert (changed.idle_minutes, changed.session_hours) == (5, 2)


def test_a_handler_idle_for_less_than_15_minutes_is_still_signed_in(people):
    handler = signed_in(people.handler())
    handler.goes_idle(14)
    assert is_signed_in(handler)
    handler.goes_idle(14)  # each request counts as activity, so another 14 minutes is fine too
    assert is_signed_in(handler)


def test_a_handler_idle_for_15_minutes_is_signed_out_with_a_plain_page(people, console):
    handler = signed_in(people.handler())
    token = handler.session_token
    handler.goes_idle(15.5)
    assert "signed out after 15 minutes" in signed_out_message(handler.get("/inbox"))
    assert not is_signed_in(handler)
    row = session_row(console, token)
    assert row.end_reason is SessionEnd.IDLE and row.sealed_key is None
    with console.db.session() as session:
        expired = session.scalars(select(AuditEntry).where(AuditEntry.action == AuditAction.SESSION_EXPIRED)).all()
    assert [(e.actor_id, e.detail) for e in expired] == [(handler.user_id, '{"reason":"idle"}')]


def test_a_form_posted_after_the_time_out_gets_the_signed_out_page_not_a_csrf_error(people):
    handler = signed_in(people.handler())
    token, csrf = handler.session_token, handler.csrf()
    handler.goes_idle(16)
    form = {"csrf_token": csrf, "current_password": handler.password, "new_password": "a new password 123"}
    assert "signed out after 15 minutes" in signed_out_message(handler.client.post("/account/password", data=form))
    handler.uses_token(token)  # the page told the browser to drop it; a second tab still has it
    body = signed_out_message(handler.client.post("/account/password", data={"current_password": "x"}))
    assert "signed out after 15 minutes" in body
    handler.uses_token(token)
    signing_out = handler.client.post("/sign-out", data={"csrf_token": csrf})
    assert signing_out.status_code == 302 and "/sign-in" in signing_out.headers["Location"]


def test_the_idle_limit_is_configurable(console_with):
    app, people = console_with(CONSOLE_IDLE_MINUTES="5")
    handler = signed_in(people.handler())
    handler.goes_idle(4)
    assert is_signed_in(handler)
    handler.goes_idle(5.5)
    assert "signed out after 5 minutes" in signed_out_message(handler.get("/inbox"))


def test_a_session_ends_after_12_hours_however_busy(people, console):
    handler = signed_in(people.handler())
    handler.signed_in_hours_ago(11.9)
    assert is_signed_in(handler)
    token = handler.session_token
    handler.signed_in_hours_ago(12.1)  # last seen a moment ago: activity does not stretch the limit
    assert "at most 12 hours" in signed_out_message(handler.get("/inbox"))
    assert session_row(console, token).end_reason is SessionEnd.TOO_LONG


def test_the_absolute_limit_is_configurable(console_with):
    app, people = console_with(CONSOLE_SESSION_HOURS="2")
    handler = signed_in(people.handler())
    handler.signed_in_hours_ago(1.9)
    assert is_signed_in(handler)
    handler.signed_in_hours_ago(2.1)
    assert "at most 2 hours" in signed_out_message(handler.get("/inbox"))


def test_each_step_of_signing_in_gets_a_new_session_id(people, console):
    handler = people.handler()
    handler.get("/sign-in")
    before = handler.session_token
    assert before, "the sign-in page gives a visitor a session (for its CSRF token)"
    handler.post_form("/sign-in", {"username": handler.username, "password": handler.password})
    after_password = handler.session_token
    handler.post_form("/sign-in/second-factor", {"code": handler.totp_code()})
    after_code = handler.session_token
    assert len({before, after_password, after_code}) == 3
    assert is_signed_in(handler)

    # Someone who planted or saw a token before sign-in holds nothing afterwards.
    for old in (before, after_password):
        attacker = people.app.test_client()
        attacker.set_cookie("hotline_console", old)
        assert attacker.get("/account").status_code == 302
        assert session_row(console, old) is None


def test_a_signed_out_session_is_useless_afterwards(people, console):
    handler = signed_in(people.handler())
    token = handler.session_token
    assert handler.signs_out().status_code == 302
    row = session_row(console, token)
    assert row.end_reason is SessionEnd.SIGNED_OUT and row.sealed_key is None
    handler.uses_token(token)
    assert handler.get("/account").status_code == 302


def test_every_console_process_on_one_database_shares_the_sessions(console_app, console_with, people):
    other_app, _ = console_with()
    handler = signed_in(people.handler())
    elsewhere = other_app.test_client()
    elsewhere.set_cookie("hotline_console", handler.session_token)
    page = elsewhere.get("/account")
    assert page.status_code == 200 and handler.username.title() in page.get_data(as_text=True)

    # Signing out through the other process ends the session for this one too.
    csrf = handler.csrf()
    assert elsewhere.post("/sign-out", data={"csrf_token": csrf}).status_code == 302
    assert handler.get("/account").status_code == 302
