"""A person's own account: changing the password re-wraps their copy of the key and puts their other
sessions out."""
from __future__ import annotations

import json

import pytest

from console.accounts.services import unwrap_account_key
from console.keys import KeyUnwrapError
from storage.crypto import raw_public_bytes
from storage.models import AuditAction
from tests.console.support import audit_entries

NEW_PASSWORD = "a brand new passphrase 7"


def changes_password(person, current: str, new: str, confirm: str | None = None):
    return person.post_form("/account", {"current": current, "new": new, "confirm": new if confirm is None else confirm},
                            action="/account/password")


def test_a_new_password_rewraps_the_key_and_ends_the_other_sessions(people, console, private_key):
    handler = people.handler()
    handler.signs_in()
    desk = handler.client
    laptop = handler.new_browser()
    handler.signs_in(code=handler.next_totp_code())

    changed = changes_password(handler, handler.password, NEW_PASSWORD)

    assert changed.status_code == 302 and changed.headers["Location"].endswith("/account")
    assert "1 other session ended" in laptop.get("/account").get_data(as_text=True)
    user = people.user(handler)
    with pytest.raises(KeyUnwrapError):
        unwrap_account_key(user, handler.password)
    assert raw_public_bytes(unwrap_account_key(user, NEW_PASSWORD).public_key()) == raw_public_bytes(private_key.public_key())

    put_out = desk.get("/inbox")
    assert put_out.status_code == 401 and "Your password was changed" in put_out.get_data(as_text=True)
    assert laptop.get("/inbox").status_code == 200
    [entry] = audit_entries(console, AuditAction.PASSWORD_CHANGED)
    assert entry.actor_id == entry.target_user_id == handler.user_id
    assert json.loads(entry.detail) == {"sessions_ended": 1}

    handler.signs_out()
    old = handler.post_form("/sign-in", {"username": handler.username, "password": handler.password})
    assert old.status_code == 200
    new = handler.post_form("/sign-in", {"username": handler.username, "password": NEW_PASSWORD})
    assert new.headers["Location"].endswith("/sign-in/second-factor")


def test_a_wrong_current_password_changes_nothing(people, console):
    handler = people.handler()
    handler.signs_in()

    refused = changes_password(handler, "not my password at all", NEW_PASSWORD)

    assert refused.status_code == 400 and "current password is not right" in refused.get_data(as_text=True)
    unwrap_account_key(people.user(handler), handler.password)  # the old copy still opens
    assert audit_entries(console, AuditAction.PASSWORD_CHANGED) == []


def test_bad_new_passwords_are_explained(people):
    handler = people.handler()
    handler.signs_in()

    cases = {
        "The two new passwords differ.": ("a long passphrase 1", "a long passphrase 2"),
        "at least 12 characters": ("short", "short"),
        "must not contain your user name": (f"x{handler.username}x-long", f"x{handler.username}x-long"),
        "too long": ("p" * 2000, "p" * 2000),
    }
    for message, (new, confirm) in cases.items():
        response = changes_password(handler, handler.password, new, confirm)
        assert response.status_code == 400 and message in response.get_data(as_text=True), message
    missing = handler.post_form("/account", {}, action="/account/password")
    assert missing.status_code == 400 and "Enter your current password." in missing.get_data(as_text=True)
    unwrap_account_key(people.user(handler), handler.password)


def test_the_account_page_offers_a_security_key(people):
    handler = people.handler()
    handler.signs_in()

    html = handler.get("/account").get_data(as_text=True)

    assert 'id="add-security-key"' in html and 'id="security-key-label"' in html
    assert 'data-csrf="' in html and "console/webauthn.js" in html
