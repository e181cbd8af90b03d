"""Every /ivr/* request must carry Twilio's signature over PUBLIC_BASE_URL + path + query and the form."""
from __future__ import annotations

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from ivr.signature import signature_of
from storage.models import Call
from tests.conftest import PUBLIC_BASE_URL
from tests.support.webhooks import SignedTwilio, call_params, new_call_sid


@pytest.fixture
def twilio(app, settings):
    return SignedTwilio(app.test_client(), settings.twilio_auth_token)


def _calls(hotline) -> int:
    with hotline.db.session() as session:
        return session.scalar(select(func.count()).select_from(Call))


def test_a_correctly_signed_call_is_answered_even_behind_a_proxy(twilio, hotline):
    response = twilio.post("/ivr/voice", call_params(new_call_sid()), base_url="http://10.0.0.5:8000")
    assert response.status_code == 200 and response.mimetype == "text/xml"
    assert _calls(hotline) == 1


def test_a_tampered_parameter_is_refused_and_nothing_is_stored(twilio, hotline):
    params = call_params(new_call_sid())
    signature = twilio.signature(PUBLIC_BASE_URL + "/ivr/voice", params)
    params["Digits"] = "2"
    assert twilio.post("/ivr/voice", params, signature=signature).status_code == 403
    assert _calls(hotline) == 0


@pytest.mark.parametrize("signed_url", [
    "https://evil.example/ivr/voice",
    "http://hotline.test/ivr/voice",        # wrong scheme
    "https://hotline.test:8443/ivr/voice",  # a port Twilio was not given
    "https://hotline.test/ivr/welcome",     # another path
    "https://hotline.test/ivr/voice?try=2",  # another query
])
def test_a_signature_for_another_url_is_refused(twilio, hotline, signed_url):
    assert twilio.post("/ivr/voice", call_params(new_call_sid()), signed_url=signed_url).status_code == 403
    assert _calls(hotline) == 0


def test_the_default_port_may_or_may_not_be_in_the_signed_url(twilio):
    # Twilio's signing is not consistent about :443; both forms are Twilio's.
    response = twilio.post("/ivr/voice", call_params(new_call_sid()), signed_url="https://hotline.test:443/ivr/voice")
    assert response.status_code == 200


def test_the_query_string_is_part_of_what_is_signed(twilio):
    params = call_params(new_call_sid())
    assert twilio.post("/ivr/welcome?try=2", params).status_code == 200
    wrong = twilio.signature(PUBLIC_BASE_URL + "/ivr/welcome", params)
    assert twilio.post("/ivr/welcome?try=2", params, signature=wrong).status_code == 403


def test_repeated_keys_are_all_signed(twilio):
    params = MultiDict(call_params(new_call_sid()))
    params.add("Extra", "one")
    params.add("Extra", "two")
    assert twilio.post("/ivr/voice", params).status_code == 200
    only_first = MultiDict(call_params(params["CallSid"]))
    only_first.add("Extra", "one")
    signature = twilio.signature(PUBLIC_BASE_URL + "/ivr/voice", only_first)
    assert twilio.post("/ivr/voice", params, signature=signature).status_code == 403


def test_a_missing_signature_is_refused_and_logged_only_as_a_rejection(twilio, hotline, captured_logs):
    caller = "+447700900999"
    response = twilio.post("/ivr/voice", call_params(new_call_sid(), caller=caller), signature=False)
    assert response.status_code == 403
    assert _calls(hotline) == 0
    assert "rejected a webhook to ivr.voice: bad or missing signature" in captured_logs.text
    assert "7700900999" not in captured_logs.text


FORGED = "2026-01-01 00:00:00,000 CRITICAL hotline.ivr: webhooks disabled by the operator"


@pytest.mark.parametrize("path", [
    "/ivr/x%0A" + FORGED.replace(" ", "%20"),
    "/ivr/voice%0D%0A" + FORGED.replace(" ", "%20"),
    "/ivr/welcome?x=%0A" + FORGED.replace(" ", "%20") + "&From=%2B447700900999",
    "/ivr/%E2%80%AEevil",
])
def test_an_unsigned_request_logs_its_endpoint_never_its_path_or_query(twilio, captured_logs, path):
    assert twilio.post(path, call_params(new_call_sid()), signature=False).status_code == 403
    messages = [record.getMessage() for record in captured_logs.records if record.name.startswith("hotline")]
    assert len(messages) == 1 and messages[0].startswith("rejected a webhook to ivr.")
    assert messages[0].isascii() and messages[0].isprintable()
    assert "webhooks disabled" not in captured_logs.text and "7700900999" not in captured_logs.text
    assert "evil" not in captured_logs.text


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_unsigned_requests_warn_at_most_once_per_interval_with_a_count_of_the_rest(app, twilio, captured_logs):
    clock = FakeClock()
    throttle = app.extensions["hotline.ivr.rejections"]
    throttle.clock = clock
    assert throttle.interval == 10.0

    def flood(count: int) -> list[str]:
        for number in range(count):
            path = ["/ivr/voice", "/ivr/status", "/ivr/nope"][number % 3]
            assert twilio.post(path, call_params(new_call_sid()), signature=False).status_code == 403
        return [r.getMessage() for r in captured_logs.records if "bad or missing signature" in r.getMessage()]

    assert len(flood(50)) == 1
    clock.now += 9.9
    assert len(flood(1)) == 1
    clock.now += 0.2
    warnings = flood(1)
    assert len(warnings) == 2 and "(50 more refused since the last warning)" in warnings[1]
    clock.now += 10.0
    warnings = flood(1)
    assert len(warnings) == 3 and "more refused" not in warnings[2]


def test_a_signature_made_with_another_token_is_refused(app, hotline):
    other = SignedTwilio(app.test_client(), "f" * 32)
    assert other.post("/ivr/voice", call_params(new_call_sid())).status_code == 403
    assert _calls(hotline) == 0


@pytest.mark.parametrize("path", ["/ivr/status", "/ivr/recording-status", "/ivr/category", "/ivr/nope"])
def test_every_ivr_path_requires_the_signature(twilio, path):
    assert twilio.post(path, call_params(new_call_sid()), signature=False).status_code == 403


# --- the signature itself, against twilio's own helper ---------------------------------------------------

_names = st.sampled_from(["CallSid", "From", "Digits", "RecordingUrl", "Extra", "a", "A", "a_b", "É"]) | st.text(max_size=8)


@hypothesis_settings(max_examples=400, deadline=None)
@given(token=st.text(min_size=1, max_size=40), path=st.text(max_size=30),
       pairs=st.lists(st.tuples(_names, st.text(max_size=20)), max_size=12))
def test_the_signature_is_twilios_for_any_form(token, path, pairs):
    # Repeated names, repeated values, empty ones, any Unicode: the same answer as twilio's helper.
    url = PUBLIC_BASE_URL + "/ivr/" + path
    form = MultiDict(pairs)
    assert signature_of(token, url, form) == RequestValidator(token).compute_signature(url, form)


def test_the_signature_changes_with_each_value_a_repeated_name_holds():
    one = MultiDict([("Extra", "one"), ("Extra", "two")])
    other = MultiDict([("Extra", "one"), ("Extra", "three")])
    assert signature_of("token", PUBLIC_BASE_URL, one) != signature_of("token", PUBLIC_BASE_URL, other)
