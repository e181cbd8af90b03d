"""Security keys (WebAuthn): adding one on the account page, signing in with it, and every way a bad
answer is refused with a 4xx. A software authenticator stands in for the key here; the browser tests
drive Chromium's virtual authenticator through webauthn.js."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

from webauthn.helpers import bytes_to_base64url

from storage.models import AuditAction, User, WebAuthnCredential
from tests.console.auth.soft_authenticator import SoftAuthenticator
from tests.console.support import audit_entries

SECOND_FACTOR = "/sign-in/second-factor"
SIGN_IN_OPTIONS = "/sign-in/webauthn/options"
SIGN_IN_VERIFY = "/sign-in/webauthn/verify"
REGISTER_OPTIONS = "/account/webauthn/register/options"
REGISTER_VERIFY = "/account/webauthn/register/verify"


@pytest.fixture
def authenticator(console_settings) -> SoftAuthenticator:
    return SoftAuthenticator(origin=console_settings.public_url)


def adds_security_key(person, authenticator: SoftAuthenticator, label: str = "Blue key"):
    options = person.post_json("/account", REGISTER_OPTIONS, {"label": label})
    assert options.status_code == 200, options.get_data(as_text=True)
    return person.post_json("/account", REGISTER_VERIFY, {"label": label, "credential": authenticator.create(options.json)})


def gives_password(person):
    response = person.post_form("/sign-in", {"username": person.username, "password": person.password})
    assert response.headers["Location"].endswith(SECOND_FACTOR)


def security_key_options(person) -> dict:
    response = person.post_json(SECOND_FACTOR, SIGN_IN_OPTIONS, {})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def keys_of(console, person) -> list[WebAuthnCredential]:
    with console.db.session() as session:
        return list(session.scalars(select(WebAuthnCredential).where(WebAuthnCredential.user_id == person.user_id)))


@pytest.fixture
def handler_with_key(people, authenticator):
    handler = people.handler()
    handler.signs_in()
    assert adds_security_key(handler, authenticator).status_code == 200
    handler.signs_out()
    return handler


def test_a_key_added_on_the_account_page_signs_in_and_its_counter_is_kept(people, console, authenticator):
    handler = people.handler()
    handler.signs_in()

    added = adds_security_key(handler, authenticator, label="Blue key")

    assert added.status_code == 200 and added.json == {"redirect": "/account"}
    assert "Blue key" in handler.get("/account").get_data(as_text=True)
    [key] = keys_of(console, handler)
    assert key.credential_id == authenticator.credential_id and key.label == "Blue key"
    [entry] = audit_entries(console, AuditAction.SECOND_FACTOR_ADDED)
    assert entry.target_user_id == handler.user_id and json.loads(entry.detail)["kind"] == "webauthn"

    handler.signs_out()
    gives_password(handler)
    second_factor_page = handler.get(SECOND_FACTOR).get_data(as_text=True)
    assert 'id="use-security-key"' in second_factor_page and "webauthn.js" in second_factor_page
    options = security_key_options(handler)
    assert [c["id"] for c in options["allowCredentials"]] == [bytes_to_base64url(authenticator.credential_id)]
    signed_in = handler.post_json(SECOND_FACTOR, SIGN_IN_VERIFY, {"credential": authenticator.get(options)})

    assert signed_in.status_code == 200 and signed_in.json == {"redirect": "/inbox"}
    assert handler.get("/inbox").status_code == 200
    [key] = keys_of(console, handler)
    assert key.sign_count == 1 and key.last_used_at is not None
    assert json.loads(audit_entries(console, AuditAction.SIGN_IN)[-1].detail) == {"method": "webauthn"}


def test_an_answer_whose_counter_did_not_go_up_is_refused(handler_with_key, console, authenticator):
    handler = handler_with_key
    gives_password(handler)
    handler.post_json(SECOND_FACTOR, SIGN_IN_VERIFY, {"credential": authenticator.get(security_key_options(handler))})
    handler.signs_out()

    gives_password(handler)
    cloned = authenticator.get(security_key_options(handler), count_up=False)
    response = handler.post_json(SECOND_FACTOR, SIGN_IN_VERIFY, {"credential": cloned})

    assert response.status_code == 400 and "not accepted" in response.json["error"]
    assert handler.get("/inbox").headers["Location"].endswith("/sign-in")
    failed = audit_entries(console, AuditAction.SECOND_FACTOR_FAILED)
    assert [json.loads(e.detail)["reason"] for e in failed] == ["security-key-refused"]


def test_an_answer_made_for_another_site_is_refused(handler_with_key, authenticator):
    handler = handler_with_key
    gives_password(handler)

    phished = authenticator.get(security_key_options(handler), origin="https://console.example.evil")
    response = handler.post_json(SECOND_FACTOR, SIGN_IN_VERIFY, {"credential": phished})

    assert response.status_code == 400
    assert handler.get("/inbox").headers["Location"].endswith("/sign-in")


def test_another_persons_key_does_not_sign_in(handler_with_key, people, console_settings, authenticator):
    other = people.handler()
    other.signs_in()
    adds_security_key(other, SoftAuthenticator(origin=console_settings.public_url))
    other.signs_out()
    gives_password(other)

    response = other.post_json(SECOND_FACTOR, SIGN_IN_VERIFY, {"credential": authenticator.get(security_key_options(other))})

    assert response.status_code == 400 and "not accepted" in response.json["error"]
    assert other.get("/inbox").headers["Location"].endswith("/sign-in")


def test_a_challenge_answers_once(handler_with_key, console, authenticator):
    handler = handler_with_key
    gives_password(handler)
    options = security_key_options(handler)
    handler.post_json(SECOND_FACTOR, SIGN_IN_VERIFY, {"credential": {"id": "x"}})

    response = handler.post_json(SECOND_FACTOR, SIGN_IN_VERIFY, {"credential": authenticator.get(options)})

    assert response.status_code == 400 and "expired" in response.json["error"]


def test_sign_in_verify_refuses_malformed_bodies_with_400(handler_with_key):
    handler = handler_with_key
    gives_password(handler)
    security_key_options(handler)
    token = handler.csrf(SECOND_FACTOR)

    for raw in [b"", b"not json", b"{", b"\xff\xfe"]:
        response = handler.client.post(SIGN_IN_VERIFY, data=raw, content_type="application/json",
                                       headers={"X-CSRFToken": token})
        assert response.status_code == 400 and response.json["error"], raw
    for body in [[], 7, {"credential": []}, {"credential": "x"}, {"nothing": 1}]:
        response = handler.client.post(SIGN_IN_VERIFY, json=body, headers={"X-CSRFToken": token})
        assert response.status_code == 400 and response.json["error"], body


def test_sign_in_verify_without_a_challenge_is_400(handler_with_key, authenticator):
    handler = handler_with_key
    gives_password(handler)

    response = handler.post_json(SECOND_FACTOR, SIGN_IN_VERIFY,
                                 {"credential": authenticator.get({"rpId": "localhost", "challenge": "AAAA"})})

    assert response.status_code == 400 and "expired" in response.json["error"]


def test_garbage_in_a_credential_is_a_400_and_counts_as_a_failure(handler_with_key, console, authenticator):
    handler = handler_with_key
    broken_answers = [
        {"id": "x"},
        {"id": 1, "rawId": None, "response": "nope", "type": "public-key"},
        {**authenticator.get({"rpId": "localhost", "challenge": "AAAA"}), "response": {
            "clientDataJSON": "!!!", "authenticatorData": "@@", "signature": "", "userHandle": 5}},
    ]
    gives_password(handler)

    for answer in broken_answers:
        security_key_options(handler)
        response = handler.post_json(SECOND_FACTOR, SIGN_IN_VERIFY, {"credential": answer})
        assert response.status_code == 400, answer

    assert len(audit_entries(console, AuditAction.SECOND_FACTOR_FAILED)) == len(broken_answers)


def test_without_a_security_key_there_are_no_options(people):
    handler = people.handler()
    gives_password(handler)

    response = handler.post_json(SECOND_FACTOR, SIGN_IN_OPTIONS, {})

    assert response.status_code == 400 and "no security key" in response.json["error"]
    assert 'id="use-security-key"' not in handler.get(SECOND_FACTOR).get_data(as_text=True)


def test_a_visitor_cannot_ask_for_options(console_app):
    visitor = console_app.test_client()

    assert visitor.post(SIGN_IN_OPTIONS, json={}).status_code in (400, 401)
    assert visitor.post(REGISTER_OPTIONS, json={}).status_code in (400, 401)


# --- adding and removing keys ------------------------------------------------------------------------

def test_adding_a_key_needs_a_name(people):
    handler = people.handler()
    handler.signs_in()

    for body in [{}, {"label": ""}, {"label": "   "}, {"label": "x" * 65}, {"label": 42}, {"label": ["a"]}, []]:
        response = handler.post_json("/account", REGISTER_OPTIONS, body)
        assert response.status_code == 400 and "name" in response.json["error"], body


def test_adding_a_key_refuses_bad_answers_with_400(people, console, authenticator):
    handler = people.handler()
    handler.signs_in()

    no_challenge = handler.post_json("/account", REGISTER_VERIFY, {"label": "Key", "credential": {"id": "x"}})
    handler.post_json("/account", REGISTER_OPTIONS, {"label": "Key"})
    garbage = handler.post_json("/account", REGISTER_VERIFY, {"label": "Key", "credential": {"id": "x", "rawId": "y"}})
    options = handler.post_json("/account", REGISTER_OPTIONS, {"label": "Key"}).json
    wrong_origin = handler.post_json("/account", REGISTER_VERIFY, {
        "label": "Key", "credential": authenticator.create(options, origin="https://elsewhere.example")})
    not_json = handler.client.post(REGISTER_VERIFY, data=b"{{", content_type="application/json",
                                   headers={"X-CSRFToken": handler.csrf()})

    for response in (no_challenge, garbage, wrong_origin, not_json):
        assert response.status_code == 400 and response.json["error"]
    assert keys_of(console, handler) == []
    assert audit_entries(console, AuditAction.SECOND_FACTOR_ADDED) == []


def test_the_same_key_cannot_be_added_twice(people, console, authenticator):
    handler = people.handler()
    handler.signs_in()
    adds_security_key(handler, authenticator)

    again = adds_security_key(handler, authenticator, label="Again")

    assert again.status_code == 400 and "already" in again.json["error"]
    assert len(keys_of(console, handler)) == 1


def test_the_last_second_factor_cannot_be_removed(handler_with_key, console):
    handler = handler_with_key
    handler.signs_in(code=handler.next_totp_code())
    [key] = keys_of(console, handler)
    with console.db.session() as session:  # as if the person had only the key (no app)
        session.execute(update(User).where(User.id == handler.user_id).values(totp_secret_sealed=None))
        session.commit()

    refused = handler.post_form("/account", {}, action=f"/account/security-keys/{key.id}/remove", follow_redirects=True)

    assert "only second factor" in refused.get_data(as_text=True)
    assert len(keys_of(console, handler)) == 1
    assert audit_entries(console, AuditAction.SECOND_FACTOR_REMOVED) == []


def test_removing_a_key_is_audited(people, console, authenticator):
    handler = people.handler()
    handler.signs_in()
    adds_security_key(handler, authenticator)
    [key] = keys_of(console, handler)

    removed = handler.post_form("/account", {}, action=f"/account/security-keys/{key.id}/remove", follow_redirects=True)

    assert "was removed" in removed.get_data(as_text=True)
    assert keys_of(console, handler) == []
    [entry] = audit_entries(console, AuditAction.SECOND_FACTOR_REMOVED)
    assert entry.target_user_id == handler.user_id and json.loads(entry.detail)["kind"] == "webauthn"


def test_removing_someone_elses_or_no_key_is_refused(handler_with_key, people, console):
    [key] = keys_of(console, handler_with_key)
    other = people.handler()
    other.signs_in()

    for key_id in (key.id, 999999, 2**40):
        response = other.post_form("/account", {}, action=f"/account/security-keys/{key_id}/remove", follow_redirects=True)
        assert response.status_code == 200 and "no such security key" in response.get_data(as_text=True)
    assert len(keys_of(console, handler_with_key)) == 1
