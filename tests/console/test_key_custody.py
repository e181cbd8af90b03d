"""Key custody: a copy of the whole database (and so of the session store in it), taken while a handler
is signed in, opens neither the hotline's private key nor any sealed item without that handler's cookie
or password. The same copies do open with the cookie or the password, so these tests can fail."""
from __future__ import annotations

import base64
from datetime import timedelta
from hashlib import sha256

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import MetaData, select

from console.accounts.services import invite
from console.keys import KeyUnwrapError, open_for_session, unwrap_for_account, unwrap_for_invitation
from console.sessions import SessionSweeper, key_secret_for, session_id_for
from storage.crypto import raw_public_bytes
from storage.models import ConsoleSession, Role, User
from tests.console.support import skip_until_built
from tests.support.takes import stored_case_with_contact


@pytest.fixture(autouse=True)
def _needs_sign_in(console_app):
    skip_until_built(console_app, "auth.second_factor")


def raw_private(private_key: X25519PrivateKey) -> bytes:
    return private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())


class DatabaseCopy:
    """Every row of every table, as someone with a backup (and no cookie) would have it."""

    def __init__(self, db):
        tables = MetaData()
        tables.reflect(db.engine)
        self.rows: dict[str, list[dict]] = {}
        with db.engine.connect() as connection:
            for table in tables.sorted_tables:
                self.rows[table.name] = [dict(row._mapping) for row in connection.execute(select(table))]

    def values(self) -> list:
        return [value for rows in self.rows.values() for row in rows for value in row.values() if value is not None]

    def texts(self) -> set[str]:
        return {str(value) for value in self.values() if not isinstance(value, (bytes, memoryview))}

    def blobs(self) -> set[bytes]:
        return {bytes(value) for value in self.values() if isinstance(value, (bytes, memoryview))}

    def guesses(self) -> set[bytes]:
        """Every secret an attacker could derive from the copy: each value as it is, hashed, hex-decoded,
        and put through the cookie's own derivation as if it were a cookie token."""
        guesses = set(self.blobs()) | {sha256(blob).digest() for blob in self.blobs()}
        for text in self.texts():
            guesses |= {text.encode(), sha256(text.encode()).digest(), key_secret_for(text)}
            try:
                guesses.add(bytes.fromhex(text))
            except ValueError:
                pass
        return guesses


def test_a_copy_of_the_database_opens_no_session_key_without_the_cookie(console, people, hotline, fake_twilio, private_key):
    stored_case_with_contact(hotline, fake_twilio)
    handler = people.handler()
    handler.signs_in()
    token = handler.session_token
    copy = DatabaseCopy(console.db)

    sessions = [row for row in copy.rows["console_sessions"] if row["sealed_key"] is not None]
    assert [row["id"] for row in sessions] == [session_id_for(token)]
    sealed_key, row_id = bytes(sessions[0]["sealed_key"]), sessions[0]["id"]
    guesses = copy.guesses()
    assert len(guesses) > 50
    opened = []
    for guess in guesses:
        try:
            open_for_session(sealed_key, guess, row_id)
            opened.append(guess)
        except KeyUnwrapError:
            pass
    assert opened == []
    # With the cookie it opens, and it is the hotline's key.
    assert raw_private(open_for_session(sealed_key, key_secret_for(token), row_id)) == raw_private(private_key)


def test_a_copy_of_the_database_holds_the_private_key_in_no_form(console, people, hotline, fake_twilio, private_key):
    stored_case_with_contact(hotline, fake_twilio)
    people.handler().signs_in()
    copy = DatabaseCopy(console.db)
    raw = raw_private(private_key)
    spellings = {raw, raw.hex().encode(), base64.b64encode(raw), base64.urlsafe_b64encode(raw)}
    everything = list(copy.blobs()) + [text.encode() for text in copy.texts()]
    assert not [value for value in everything for spelling in spellings if spelling in value]
    # No 32-byte value in the copy, or digest of one, is a private key whose public half is the hotline's.
    hotline_public = raw_public_bytes(private_key.public_key())
    assert not [guess for guess in copy.guesses() if len(guess) == 32
                and raw_public_bytes(X25519PrivateKey.from_private_bytes(guess).public_key()) == hotline_public]


def test_an_accounts_copy_of_the_key_needs_its_password(console, people, private_key):
    handler = people.handler()
    handler.signs_in()
    copy = DatabaseCopy(console.db)
    account = next(row for row in copy.rows["users"] if row["id"] == handler.user_id)
    candidates = {text for text in copy.texts() if len(text) <= 256}
    assert handler.password not in candidates
    for candidate in candidates:
        with pytest.raises(KeyUnwrapError):
            unwrap_for_account(account["wrapped_key"], candidate, handler.user_id)
    opened = unwrap_for_account(account["wrapped_key"], handler.password, handler.user_id)
    assert raw_private(opened) == raw_private(private_key)


def test_an_invitations_copy_of_the_key_needs_the_link(console, private_key):
    with console.db.session() as session:
        invitation = invite(session, private_key, "newcomer", "New Comer", Role.HANDLER, None, timedelta(hours=1))
        session.commit()
        user_id, token = invitation.user.id, invitation.token
    copy = DatabaseCopy(console.db)
    wrapped = next(row for row in copy.rows["users"] if row["id"] == user_id)["invite_wrapped_key"]
    assert token not in copy.texts()
    for candidate in copy.texts():
        with pytest.raises(KeyUnwrapError):
            unwrap_for_invitation(wrapped, candidate, user_id)
    assert raw_private(unwrap_for_invitation(wrapped, token, user_id)) == raw_private(private_key)


def sealed_key_of(console, token: str) -> bytes | None:
    with console.db.session() as session:
        return session.get(ConsoleSession, session_id_for(token)).sealed_key


def test_signing_out_wipes_the_sessions_copy_of_the_key(console, people):
    handler = people.handler()
    handler.signs_in()
    token = handler.session_token
    assert sealed_key_of(console, token) is not None
    handler.signs_out()
    assert sealed_key_of(console, token) is None


def test_an_idle_session_whose_cookie_comes_back_has_its_key_wiped(console, people):
    handler = people.handler()
    handler.signs_in()
    token = handler.session_token
    handler.goes_idle(console.settings.idle_minutes + 1)
    assert handler.get("/inbox").status_code == 401
    assert sealed_key_of(console, token) is None


def test_an_idle_session_whose_cookie_never_comes_back_has_its_key_wiped(console_app, console, people):
    # A handler who walks away leaves no cookie-openable key behind: the sweep ends the session without
    # waiting for the browser to return.
    handler, other = people.handler(), people.handler()
    handler.signs_in()
    other.signs_in()
    token = handler.session_token
    handler.goes_idle(console.settings.idle_minutes + 1)
    SessionSweeper(console_app.extensions["console_sessions"]).sweep()
    assert sealed_key_of(console, token) is None
    assert sealed_key_of(console, other.session_token) is not None
    with console.db.session() as session:
        assert session.get(User, handler.user_id).wrapped_key is not None  # the account's own copy stays


def test_a_disabled_accounts_session_has_its_key_wiped_at_its_next_request(console, people):
    # Disabled behind the session's back (the admin page also ends sessions itself): the guard, which
    # turns the browser away, must not leave the key copy for an ex-handler who kept the cookie.
    from console.accounts.services import disable

    handler = people.handler()
    handler.signs_in()
    token = handler.session_token
    with console.db.session() as session:
        disable(session.get(User, handler.user_id))
        session.commit()
    assert handler.get("/inbox").status_code == 401
    assert sealed_key_of(console, token) is None
