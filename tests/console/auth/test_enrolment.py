"""Enrolment by a one-time link, then setting up the authenticator app on the way in."""
from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pyotp
import pytest
from sqlalchemy import select, update

from console.accounts.services import unwrap_account_key
from storage.crypto import raw_public_bytes
from storage.models import AuditAction, Role, User, utcnow
from tests.console.support import Person, audit_entries

LINK_GONE = "This link has expired or was already used"
SET_UP = "/sign-in/set-up-second-factor"
SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')


def path_of(link: str) -> str:
    return urlsplit(link).path


def shown_secret(response) -> str:
    match = SECRET.search(response.get_data(as_text=True))
    assert match, "the set-up page shows no secret"
    return match.group(1)


@pytest.fixture
def admin(people):
    admin = people.admin()
    admin.signs_in()
    return admin


def newcomer_of(console_app):
    """A browser with nobody signed in yet (a Person with no account, for its form helpers)."""
    return Person(console_app, "", "", None, 0, Role.HANDLER)


def user_named(console, username: str) -> User:
    with console.db.session() as session:
        return session.scalar(select(User).where(User.username == username))


def test_an_invited_person_enrols_sets_up_the_app_and_reaches_the_inbox(admin, console_app, console, private_key):
    link = admin.invites("sam.okafor", "Sam Okafor")
    newcomer = newcomer_of(console_app)

    page = newcomer.get(path_of(link))
    assert page.status_code == 200
    assert "Sam Okafor" in page.get_data(as_text=True) and "sam.okafor" in page.get_data(as_text=True)

    enrolled = newcomer.post_form(path_of(link), {"password": "a long passphrase 42", "confirm": "a long passphrase 42"})
    assert enrolled.status_code == 302 and enrolled.headers["Location"].endswith(SET_UP)

    set_up = newcomer.get(SET_UP)
    html = set_up.get_data(as_text=True)
    assert 'src="data:image/svg+xml' in html
    secret = shown_secret(set_up)
    assert shown_secret(newcomer.get(SET_UP)) == secret  # a reload keeps the code already scanned
    code = pyotp.TOTP(secret).now()
    signed_in = newcomer.post_form(SET_UP, {"code": code})

    assert signed_in.status_code == 302 and signed_in.headers["Location"].endswith("/inbox")
    assert newcomer.get("/inbox").status_code == 200
    user = user_named(console, "sam.okafor")
    assert user.totp_secret_sealed is not None and user.invite_token_hash is None and user.invite_wrapped_key is None
    assert raw_public_bytes(unwrap_account_key(user, "a long passphrase 42").public_key()) == \
        raw_public_bytes(private_key.public_key())
    actions = [e.action for e in audit_entries(console) if e.target_user_id == user.id]
    assert actions == [AuditAction.ACCOUNT_INVITED, AuditAction.ACCOUNT_ENROLLED,
                       AuditAction.SECOND_FACTOR_ADDED, AuditAction.SIGN_IN]
    assert json.loads(audit_entries(console, AuditAction.SECOND_FACTOR_ADDED)[0].detail) == {"kind": "totp"}

    # The code that confirmed the app is used up.
    newcomer.signs_out()
    newcomer.post_form("/sign-in", {"username": "sam.okafor", "password": "a long passphrase 42"})
    assert newcomer.post_form("/sign-in/second-factor", {"code": code}).status_code == 200


def test_the_link_works_only_once(admin, console_app):
    link = admin.invites("ana.lima", "Ana Lima")
    first = newcomer_of(console_app)
    first.post_form(path_of(link), {"password": "a long passphrase 42", "confirm": "a long passphrase 42"})

    second = newcomer_of(console_app)
    response = second.get(path_of(link))

    assert response.status_code == 404 and LINK_GONE in response.get_data(as_text=True)
    assert second.client.post(path_of(link), data={"password": "x"}).status_code in (400, 404)


def test_an_expired_link_is_refused(admin, console_app, console):
    link = admin.invites("old.invite", "Old Invite")
    with console.db.session() as session:
        session.execute(update(User).where(User.username == "old.invite").values(
            invite_expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    newcomer = newcomer_of(console_app)

    response = newcomer.get(path_of(link))

    assert response.status_code == 404 and LINK_GONE in response.get_data(as_text=True)


def test_unknown_or_odd_links_are_404(console_app):
    visitor = console_app.test_client()

    for token in ["nope", "x" * 300, "%00", "a.b-c_d~"]:
        response = visitor.get(f"/enrol/{token}")
        assert response.status_code == 404, token


def test_the_password_rules_are_shown_on_the_form(admin, console_app, console):
    link = admin.invites("rules.check", "Rules Check")
    newcomer = newcomer_of(console_app)

    cases = {
        "The two passwords differ.": {"password": "a long passphrase 42", "confirm": "a long passphrase 43"},
        "at least 12 characters": {"password": "short", "confirm": "short"},
        "must not contain your user name": {"password": "my rules.check pass", "confirm": "my rules.check pass"},
        "Choose a password.": {},
        "too long": {"password": "p" * 2000, "confirm": "p" * 2000},
    }
    for message, form in cases.items():
        response = newcomer.post_form(path_of(link), form)
        assert response.status_code == 400 and message in response.get_data(as_text=True), message

    assert user_named(console, "rules.check").password_hash is None
    assert newcomer.get(path_of(link)).status_code == 200  # still usable after the mistakes


def test_a_wrong_code_at_set_up_is_explained_and_not_counted(people, console):
    handler = people.make(Role.HANDLER, with_totp=False)  # as after an admin's reset
    response = handler.post_form("/sign-in", {"username": handler.username, "password": handler.password})
    assert response.headers["Location"].endswith(SET_UP)

    for code in ["000000", "", "x" * 40]:
        refused = handler.post_form(SET_UP, {"code": code})
        assert refused.status_code == 400 and 'class="errors"' in refused.get_data(as_text=True)

    user = user_named(console, handler.username)
    assert user.totp_secret_sealed is None and user.failed_sign_ins == 0


def test_set_up_cannot_replace_an_existing_second_factor(people):
    handler = people.handler()
    handler.post_form("/sign-in", {"username": handler.username, "password": handler.password})

    assert handler.get(SET_UP).headers["Location"].endswith("/sign-in/second-factor")
    forged = handler.post_form("/sign-in/second-factor", {"code": "123456"}, action=SET_UP)
    assert forged.status_code == 302 and forged.headers["Location"].endswith("/sign-in/second-factor")
