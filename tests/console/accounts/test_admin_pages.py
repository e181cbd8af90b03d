"""The admins' pages: invitations whose key copy opens only with the link, disabling (the key copy goes,
open sessions are refused), enabling only through a new link, second-factor resets, ending sessions,
roles and the last-admin guard. Every change is audited with the account as its target."""
from __future__ import annotations

import html
import json
from hashlib import sha256
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from console.accounts.services import token_hash
from console.keys import KeyUnwrapError, unwrap_for_invitation
from storage.crypto import raw_public_bytes
from storage.models import AuditAction, Role, User, utcnow
from tests.console.support import audit_entries, csrf_token

SET_UP = "/sign-in/set-up-second-factor"


@pytest.fixture
def admin(people):
    admin = people.admin()
    admin.signs_in()
    return admin


@pytest.fixture
def handler(people):
    handler = people.handler()
    handler.signs_in()
    return handler


def acts_on(admin, person_or_id, action: str, **form):
    user_id = getattr(person_or_id, "user_id", person_or_id)
    return admin.post_form("/accounts/", form, action=f"/accounts/{user_id}/{action}")


def row_of(page: str, user_id: int) -> str:
    start = page.index(f'id="account-{user_id}"')
    return page[start:page.index("</tr>", start)]


def only_entry(console, action: AuditAction):
    [entry] = audit_entries(console, action)
    return entry


def test_accounts_are_for_admins_only(people, handler):
    supervisor = people.supervisor()
    supervisor.signs_in()

    assert handler.get("/accounts/").status_code == 403
    assert supervisor.get("/accounts/").status_code == 403
    assert handler.post_form("/account", {"username": "x", "display_name": "X"}, action="/accounts/invite").status_code == 403


def test_the_table_shows_each_accounts_state(admin, people, console, handler):
    locked, disabled = people.handler("locked.one"), people.handler("gone.one")
    admin.invites("invited.one", "Invited One")
    with console.db.session() as session:
        session.get(User, locked.user_id).locked_until = utcnow().replace(year=utcnow().year + 1)
        session.get(User, disabled.user_id).disabled_at = utcnow()
        session.commit()

    page = admin.get("/accounts/").get_data(as_text=True)

    assert "active" in row_of(page, handler.user_id) and "app" in row_of(page, handler.user_id)
    assert "<td>1</td>" in row_of(page, handler.user_id)  # one live session
    assert "locked" in row_of(page, locked.user_id) and "disabled" in row_of(page, disabled.user_id)
    with console.db.session() as session:
        invited_id = session.scalar(select(User.id).where(User.username == "invited.one"))
    assert "invited" in row_of(page, invited_id) and "none" in row_of(page, invited_id)


def test_an_invitation_made_by_an_admins_session_opens_only_with_its_token(admin, console, private_key):
    link = admin.invites("new.person", "New Person", Role.SUPERVISOR)

    assert link.startswith(console.settings.public_url + "/enrol/")
    token = urlsplit(link).path.rsplit("/", 1)[1]
    with console.db.session() as session:
        user = session.scalar(select(User).where(User.username == "new.person"))
    assert user.role is Role.SUPERVISOR and user.invited_by_id == admin.user_id and user.wrapped_key is None
    assert user.invite_token_hash == token_hash(token)
    stored = " ".join(str(value) for value in vars(user).values())
    assert token not in stored and sha256(token.encode()).hexdigest() not in stored
    opened = unwrap_for_invitation(user.invite_wrapped_key, token, user.id)
    assert raw_public_bytes(opened.public_key()) == raw_public_bytes(private_key.public_key())
    for wrong in (token[:-1] + ("A" if token[-1] != "A" else "B"), "", "x" * 43):
        with pytest.raises(KeyUnwrapError):
            unwrap_for_invitation(user.invite_wrapped_key, wrong, user.id)
    with pytest.raises(KeyUnwrapError):
        unwrap_for_invitation(user.invite_wrapped_key, token, user.id + 1)  # bound to its account
    entry = only_entry(console, AuditAction.ACCOUNT_INVITED)
    assert entry.actor_id == admin.user_id and entry.target_user_id == user.id
    assert json.loads(entry.detail) == {"role": "supervisor"}


def test_bad_invitations_are_explained(admin, people, console):
    taken = people.handler("taken.name")
    cases = {
        "Give a user name.": {"display_name": "No Name"},
        "Give the person's name.": {"username": "no.display"},
        "A user name is 2 to 32": {"username": "Has Spaces", "display_name": "X"},
        "That user name is taken.": {"username": taken.username, "display_name": "Again"},
        "too long": {"username": "u" * 5000, "display_name": "X"},
        "Up to 128 characters.": {"username": "longname", "display_name": "n" * 129},
        "no control characters": {"username": "nul.name", "display_name": "Nul\x00Name"},
        "Not a valid choice": {"username": "badrole", "display_name": "X", "role": "overlord"},
    }
    before = len(audit_entries(console))

    for message, form in cases.items():
        response = admin.post_form("/accounts/", form, action="/accounts/invite")
        assert response.status_code == 400 and message in html.unescape(response.get_data(as_text=True)), message

    assert len(audit_entries(console)) == before


def test_a_disabled_account_loses_its_key_copy_and_its_open_session(admin, handler, console):
    disabled = acts_on(admin, handler, "disable")

    assert disabled.status_code == 302
    user = console.db.sessions().get(User, handler.user_id)
    assert user.disabled_at is not None and user.wrapped_key is None
    refused = handler.get("/inbox")
    assert refused.status_code == 401 and "Your account is disabled." in refused.get_data(as_text=True)
    again = handler.post_form("/sign-in", {"username": handler.username, "password": handler.password})
    assert again.status_code == 200 and "Location" not in again.headers
    entry = only_entry(console, AuditAction.ACCOUNT_DISABLED)
    assert entry.target_user_id == handler.user_id and json.loads(entry.detail) == {"sessions_ended": 1}


def test_an_admin_cannot_disable_themselves(admin, console):
    refused = acts_on(admin, admin, "disable")

    assert refused.status_code == 400 and "cannot disable your own account" in refused.get_data(as_text=True)
    assert admin.get("/accounts/").status_code == 200
    assert audit_entries(console, AuditAction.ACCOUNT_DISABLED) == []


def test_a_disabled_account_comes_back_only_through_a_new_link(admin, handler, console, console_app):
    acts_on(admin, handler, "disable")

    enabled = acts_on(admin, handler, "enable")

    assert enabled.status_code == 200 and 'id="enrolment-link"' in enabled.get_data(as_text=True)
    user = console.db.sessions().get(User, handler.user_id)
    assert user.disabled_at is None and user.password_hash is None and user.totp_secret_sealed is None
    old_password = handler.post_form("/sign-in", {"username": handler.username, "password": handler.password})
    assert old_password.status_code == 200 and "Location" not in old_password.headers
    link = enabled.get_data(as_text=True).split('id="enrolment-link">', 1)[1].split("<", 1)[0]
    enrol = handler.post_form(urlsplit(link).path, {"password": "fresh passphrase 99", "confirm": "fresh passphrase 99"})
    assert enrol.headers["Location"].endswith(SET_UP)
    assert only_entry(console, AuditAction.ACCOUNT_ENABLED).target_user_id == handler.user_id
    assert acts_on(admin, handler, "enable").status_code == 400  # enrolled again: nothing to enable


def test_someone_who_never_enrolled_gets_a_new_link_and_the_old_one_stops(admin, console, console_app):
    old_link = admin.invites("slow.starter", "Slow Starter")
    with console.db.session() as session:
        user_id = session.scalar(select(User.id).where(User.username == "slow.starter"))

    renewed = acts_on(admin, user_id, "enable")

    assert renewed.status_code == 200
    new_link = renewed.get_data(as_text=True).split('id="enrolment-link">', 1)[1].split("<", 1)[0]
    visitor = console_app.test_client()
    assert visitor.get(urlsplit(old_link).path).status_code == 404
    assert visitor.get(urlsplit(new_link).path).status_code == 200
    entries = [e for e in audit_entries(console, AuditAction.ACCOUNT_INVITED) if e.target_user_id == user_id]
    assert [json.loads(e.detail) for e in entries] == [{"role": "handler"}, {"role": "handler", "new_link": True}]


def test_resetting_the_second_factor_forces_set_up_at_the_next_sign_in(admin, handler, console):
    reset = acts_on(admin, handler, "reset-second-factor")

    assert reset.status_code == 302
    assert handler.get("/inbox").status_code == 401
    user = console.db.sessions().get(User, handler.user_id)
    assert user.totp_secret_sealed is None and user.credentials == []
    next_time = handler.post_form("/sign-in", {"username": handler.username, "password": handler.password})
    assert next_time.headers["Location"].endswith(SET_UP)
    entry = only_entry(console, AuditAction.SECOND_FACTOR_RESET)
    assert entry.target_user_id == handler.user_id
    assert json.loads(entry.detail) == {"security_keys": 0, "sessions_ended": 1}


def test_ending_someones_sessions(admin, handler, console):
    ended = acts_on(admin, handler, "end-sessions")

    assert ended.status_code == 302
    put_out = handler.get("/inbox")
    assert put_out.status_code == 401 and "An administrator ended your session." in put_out.get_data(as_text=True)
    entry = only_entry(console, AuditAction.SESSIONS_ENDED)
    assert entry.target_user_id == handler.user_id and json.loads(entry.detail) == {"sessions_ended": 1}


def test_an_admin_ending_their_own_sessions_keeps_the_one_in_use(admin, console):
    acts_on(admin, admin, "end-sessions")

    assert admin.get("/accounts/").status_code == 200
    assert json.loads(only_entry(console, AuditAction.SESSIONS_ENDED).detail) == {"sessions_ended": 0}


def test_changing_a_role(admin, handler, console):
    changed = acts_on(admin, handler, "role", role="supervisor")

    assert changed.status_code == 302
    assert handler.get("/audit/").status_code != 403
    entry = only_entry(console, AuditAction.ROLE_CHANGED)
    assert entry.target_user_id == handler.user_id and json.loads(entry.detail) == {"from": "handler", "to": "supervisor"}


def test_the_last_active_admin_cannot_stop_being_one(admin, people, console):
    refused = acts_on(admin, admin, "role", role="handler")

    assert refused.status_code == 400 and "no active admin" in refused.get_data(as_text=True)
    assert console.db.sessions().get(User, admin.user_id).role is Role.ADMIN

    disabled_admin = people.admin()
    with console.db.session() as session:
        session.get(User, disabled_admin.user_id).disabled_at = utcnow()
        session.commit()
    assert acts_on(admin, admin, "role", role="handler").status_code == 400  # a disabled admin does not count

    people.admin()
    assert acts_on(admin, admin, "role", role="supervisor").status_code == 302
    assert admin.get("/accounts/").status_code == 403


def test_bad_input_to_the_admin_actions_gets_a_4xx(admin, handler):
    for user_id in (999999, 2**40, 0):
        for action in ("disable", "enable", "reset-second-factor", "end-sessions"):
            assert acts_on(admin, user_id, action).status_code == 404, (user_id, action)
    for role in ("", "root", "ADMIN", "x" * 5000):
        assert acts_on(admin, handler, "role", role=role).status_code == 400, role
    assert acts_on(admin, handler, "role").status_code == 400
    assert acts_on(admin, handler, "role", role="handler").status_code == 400  # already
    assert admin.client.post(f"/accounts/{handler.user_id}/disable").status_code == 400  # no CSRF token
    assert admin.get("/accounts/-1/disable").status_code in (404, 405)
    assert handler.get("/inbox").status_code == 200


def test_json_sent_to_the_forms_gets_a_4xx(admin, handler, console_app):
    # The forms read form fields only: JSON (a list, objects in fields) must not reach their validators.
    link_path = urlsplit(admin.invites("json.target", "Json Target")).path
    token = admin.csrf()
    targets = [(admin.client, "/accounts/invite"), (admin.client, f"/accounts/{handler.user_id}/role"),
               (admin.client, "/account/password")]
    visitor = console_app.test_client()
    visitor_token = csrf_token(visitor.get("/sign-in").get_data(as_text=True))
    targets += [(visitor, "/sign-in"), (visitor, link_path)]

    for client, url in targets:
        for body in ([1, "x"], {"username": {"nested": [1]}, "role": ["admin"], "password": 5}, "text", 7):
            csrf = token if client is admin.client else visitor_token
            response = client.post(url, json=body, headers={"X-CSRFToken": csrf})
            assert 400 <= response.status_code < 500, (url, body, response.status_code)
