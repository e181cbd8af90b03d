"""Signing in: a password, then a second factor; one neutral message for every refusal; lock-out with
back-off; signing out."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest

from sqlalchemy import select, update

from console.auth.services import lock_length
from console.auth.views import SIGN_IN_REFUSED, WRONG_CODE
from console.sessions import session_id_for
from storage.models import AuditAction, ConsoleSession, User, utcnow
from tests.console.support import audit_entries

SIGNED_OUT_PAGE = "signed-out-message"


def page(response) -> str:
    return response.get_data(as_text=True)


def refused(response) -> bool:
    """The sign-in page again, with the neutral message and no way forward."""
    return response.status_code == 200 and SIGN_IN_REFUSED in page(response) and "Location" not in response.headers


def set_user(console, person, **values) -> None:
    with console.db.session() as session:
        session.execute(update(User).where(User.id == person.user_id).values(**values))
        session.commit()


def user_row(console, person) -> User:
    with console.db.session() as session:
        return session.get(User, person.user_id)


def tries_password(person, password: str):
    return person.post_form("/sign-in", {"username": person.username, "password": password})


# --- the way in --------------------------------------------------------------------------------------

def test_a_password_and_a_code_from_the_app_reach_the_inbox(people, console):
    handler = people.handler()

    response = handler.signs_in()

    assert response.status_code == 302 and response.headers["Location"].endswith("/inbox")
    assert handler.get("/inbox").status_code == 200
    assert [e.action for e in audit_entries(console) if e.target_user_id == handler.user_id] == [
        AuditAction.KEY_UNWRAPPED, AuditAction.SIGN_IN]
    assert json.loads(audit_entries(console, AuditAction.SIGN_IN)[0].detail) == {"method": "totp"}
    assert user_row(console, handler).last_sign_in_at is not None


def test_the_password_alone_does_not_open_the_console(people):
    handler = people.handler()

    response = tries_password(handler, handler.password)

    assert response.headers["Location"].endswith("/sign-in/second-factor")
    assert handler.get("/inbox").headers["Location"].endswith("/sign-in")
    assert handler.get("/account").headers["Location"].endswith("/sign-in")


def test_the_second_factor_page_needs_the_password_first(console_app):
    visitor = console_app.test_client()

    assert visitor.get("/sign-in/second-factor").headers["Location"].endswith("/sign-in")
    assert visitor.get("/sign-in/set-up-second-factor").headers["Location"].endswith("/sign-in")


def test_a_wrong_password_and_an_unknown_user_get_the_same_message(people, console):
    handler = people.handler()
    secret_guess = "hunter2-not-the-password"

    wrong_password = tries_password(handler, secret_guess)
    unknown_user = handler.post_form("/sign-in", {"username": "nobody-here", "password": secret_guess})

    assert refused(wrong_password) and refused(unknown_user)
    assert page(wrong_password).count(SIGN_IN_REFUSED) == page(unknown_user).count(SIGN_IN_REFUSED) == 1
    failures = audit_entries(console, AuditAction.SIGN_IN_FAILED)
    assert [json.loads(e.detail)["reason"] for e in failures] == ["wrong-password", "unknown-user"]
    assert failures[0].target_user_id == handler.user_id and failures[1].target_user_id is None
    trail = " ".join(e.detail + e.actor for e in audit_entries(console))
    assert secret_guess not in trail and "nobody-here" not in trail


def test_a_disabled_account_gets_the_same_message_even_with_the_right_password(people, console):
    handler = people.handler()
    set_user(console, handler, disabled_at=utcnow())

    assert refused(tries_password(handler, handler.password))
    assert json.loads(audit_entries(console, AuditAction.SIGN_IN_FAILED)[-1].detail) == {"reason": "disabled"}


# --- lock-out and back-off -----------------------------------------------------------------------

def test_the_lock_lasts_a_minute_after_five_failures_and_doubles_up_to_an_hour():
    assert [lock_length(n) for n in range(5)] == [None] * 5
    assert [lock_length(n) for n in (5, 6, 7, 8)] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert lock_length(11) == lock_length(12) == lock_length(10**6) == timedelta(hours=1)
    assert lock_length(10) == timedelta(minutes=32)


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(people, console):
    handler = people.handler()

    for _ in range(5):
        assert refused(tries_password(handler, "wrong-password-123"))

    row = user_row(console, handler)
    assert row.failed_sign_ins == 5
    assert timedelta(seconds=50) < row.locked_until - utcnow() <= timedelta(minutes=1)
    locked = audit_entries(console, AuditAction.ACCOUNT_LOCKED)
    assert len(locked) == 1 and locked[0].target_user_id == handler.user_id
    assert json.loads(locked[0].detail) == {"failures": 5, "minutes": 1}

    assert refused(tries_password(handler, handler.password))
    assert json.loads(audit_entries(console, AuditAction.SIGN_IN_FAILED)[-1].detail) == {"reason": "locked"}
    assert user_row(console, handler).failed_sign_ins == 5  # a try while locked does not push the lock further


def test_after_the_lock_each_further_failure_doubles_it_and_a_full_sign_in_clears_it(people, console):
    handler = people.handler()
    set_user(console, handler, failed_sign_ins=5, locked_until=utcnow() - timedelta(seconds=1))  # a minute later

    assert refused(tries_password(handler, "wrong-password-123"))
    row = user_row(console, handler)
    assert row.failed_sign_ins == 6
    assert timedelta(seconds=110) < row.locked_until - utcnow() <= timedelta(minutes=2)

    set_user(console, handler, failed_sign_ins=30, locked_until=utcnow() - timedelta(seconds=1))
    assert refused(tries_password(handler, "wrong-password-123"))
    assert timedelta(minutes=59) < user_row(console, handler).locked_until - utcnow() <= timedelta(hours=1)

    set_user(console, handler, locked_until=utcnow() - timedelta(seconds=1))
    assert handler.signs_in().headers["Location"].endswith("/inbox")
    row = user_row(console, handler)
    assert row.failed_sign_ins == 0 and row.locked_until is None


def test_wrong_codes_count_towards_the_lock_and_end_the_pending_sign_in(people, console):
    handler = people.handler()
    set_user(console, handler, failed_sign_ins=2)  # two wrong passwords earlier
    tries_password(handler, handler.password)

    for _ in range(2):
        response = handler.post_form("/sign-in/second-factor", {"code": "000000"})
        assert response.status_code == 200 and WRONG_CODE in page(response)
    response = handler.post_form("/sign-in/second-factor", {"code": "000000"})

    assert response.status_code == 302 and "notice=stopped" in response.headers["Location"]
    assert user_row(console, handler).locked_until > utcnow()
    assert handler.get("/sign-in/second-factor").headers["Location"].endswith("/sign-in")
    failures = audit_entries(console, AuditAction.SECOND_FACTOR_FAILED)
    assert [json.loads(e.detail)["reason"] for e in failures] == ["wrong-code"] * 3
    assert all(e.actor_id == handler.user_id == e.target_user_id for e in failures)
    assert len(audit_entries(console, AuditAction.ACCOUNT_LOCKED)) == 1


def test_a_right_password_does_not_reset_the_count_before_the_second_factor(people, console):
    handler = people.handler()
    set_user(console, handler, failed_sign_ins=4)

    tries_password(handler, handler.password)

    assert user_row(console, handler).failed_sign_ins == 4


def test_a_code_already_used_is_refused(people, console):
    handler = people.handler()
    code = handler.totp_code()
    assert handler.signs_in(code=code).headers["Location"].endswith("/inbox")
    handler.signs_out()

    tries_password(handler, handler.password)
    response = handler.post_form("/sign-in/second-factor", {"code": code})

    assert response.status_code == 200 and WRONG_CODE in page(response)
    assert handler.get("/inbox").headers["Location"].endswith("/sign-in")
    assert json.loads(audit_entries(console, AuditAction.SECOND_FACTOR_FAILED)[0].detail)["reason"] == "wrong-code"


def test_one_code_cannot_sign_in_two_browsers(people):
    handler = people.handler()
    code = handler.totp_code()
    first = handler.client
    tries_password(handler, handler.password)
    second = handler.new_browser()
    tries_password(handler, handler.password)

    handler.client = first
    assert handler.post_form("/sign-in/second-factor", {"code": code}).status_code == 302
    handler.client = second
    assert handler.post_form("/sign-in/second-factor", {"code": code}).status_code == 200


def test_one_code_sent_by_two_browsers_at_once_signs_in_only_one(people, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: the race needs PostgreSQL's row locks")
    handler = people.handler()
    code = handler.totp_code()
    browsers, forms = [], []
    for _ in range(2):
        handler.new_browser()
        tries_password(handler, handler.password)
        browsers.append(handler.client)
        forms.append({"code": code, "csrf_token": handler.csrf("/sign-in/second-factor")})
    start = threading.Barrier(2)
    results = [None, None]

    def send(index: int):
        start.wait()
        results[index] = browsers[index].post("/sign-in/second-factor", data=forms[index]).status_code

    threads = [threading.Thread(target=send, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == [200, 302]


# --- bad input never makes a 500 --------------------------------------------------------------------

BAD_SIGN_IN_FORMS = [
    {},
    {"username": "someone"},
    {"password": "something"},
    {"username": "x" * 5000, "password": "y"},
    {"username": "someone", "password": "y" * 5000},
    {"username": "\x00<script>", "password": "\x00"},
]


def test_bad_input_to_the_sign_in_form_gets_a_message(people):
    visitor = people.handler()

    for form in BAD_SIGN_IN_FORMS:
        response = visitor.post_form("/sign-in", form)
        assert response.status_code in (200, 400), form
        assert 'class="errors"' in page(response), form


def test_bytes_that_are_not_utf8_get_the_neutral_message(people):
    visitor = people.handler()
    token = visitor.csrf("/sign-in")

    response = visitor.client.post("/sign-in", data=f"csrf_token={token}&username=%ff%fe&password=%c3%28".encode(),
                                   content_type="application/x-www-form-urlencoded")

    assert refused(response)


def test_bad_input_to_the_code_form_gets_a_message(people):
    handler = people.handler()
    tries_password(handler, handler.password)

    for code in ["", "abcdef", "1" * 17, "12 34 56 78", "\x00" * 6, "１２３４５６"]:
        response = handler.post_form("/sign-in/second-factor", {"code": code})
        assert response.status_code in (200, 400) and 'class="errors"' in page(response), code


def test_a_post_without_its_token_is_refused(people):
    handler = people.handler()

    response = handler.client.post("/sign-in", data={"username": handler.username, "password": handler.password})

    assert response.status_code == 400 and "Location" not in response.headers


# --- signing out -------------------------------------------------------------------------------------

def test_signing_out_ends_the_session_and_wipes_its_key(people, console):
    handler = people.handler()
    handler.signs_in()
    token = handler.session_token

    response = handler.signs_out()

    assert response.status_code == 302 and "notice=signed-out" in response.headers["Location"]
    assert "You have signed out." in page(handler.get(response.headers["Location"]))
    with console.db.session() as session:
        row = session.get(ConsoleSession, session_id_for(token))
        assert row.ended_at is not None and row.sealed_key is None
    handler.uses_token(token)
    assert handler.get("/inbox").headers["Location"].endswith("/sign-in")
    sign_out = audit_entries(console, AuditAction.SIGN_OUT)
    assert len(sign_out) == 1 and sign_out[0].actor_id == sign_out[0].target_user_id == handler.user_id


def test_signing_out_after_the_session_ran_out_says_signed_out_not_csrf(people):
    handler = people.handler()
    handler.signs_in()
    token = handler.csrf("/inbox")
    handler.goes_idle(minutes=16)

    response = handler.client.post("/sign-out", data={"csrf_token": token})

    assert response.status_code == 302 and "notice=signed-out" in response.headers["Location"]


def test_signing_out_a_live_session_needs_its_token(people):
    handler = people.handler()
    handler.signs_in()

    response = handler.client.post("/sign-out", data={"csrf_token": "forged"})

    assert response.status_code == 400
    assert handler.get("/inbox").status_code == 200


def test_signing_out_halfway_through_signing_in_is_not_audited_as_a_sign_out(people, console):
    handler = people.handler()
    tries_password(handler, handler.password)

    response = handler.post_form("/sign-in/second-factor", {}, action="/sign-out")

    assert response.status_code == 302
    assert handler.get("/sign-in/second-factor").headers["Location"].endswith("/sign-in")
    assert audit_entries(console, AuditAction.SIGN_OUT) == []
    with console.db.session() as session:
        assert session.scalars(select(ConsoleSession).where(
            ConsoleSession.user_id == handler.user_id, ConsoleSession.ended_at.is_(None))).all() == []
