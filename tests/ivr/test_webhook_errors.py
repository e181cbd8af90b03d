"""Zero webhook errors (issue 8). Twilio keeps the parameters of every webhook that failed, the caller's
number among them, so a signed but malformed webhook must be a 400 that writes nothing, and no failure
may reach Flask's default error logging (which prints the exception's message, and with it the value).

The app runs as in production here: in testing mode Flask re-raises an unhandled exception into the
test instead of answering 500 and logging it through app.logger."""
from __future__ import annotations

import logging
import secrets

import pytest
from sqlalchemy import select, text

from ivr.views import bp
from storage.models import Call, CallStatus, Recording
from tests.conftest import ACCOUNT_SID
from tests.support.tables import table_contents
from tests.support.webhooks import SignedTwilio, call_params, check_twiml, new_call_sid

CALLER_DIGITS = "7700900123"  # call_params' default caller, +447700900123


@pytest.fixture
def production_app(app):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


@pytest.fixture
def twilio(production_app, settings):
    return SignedTwilio(production_app.test_client(), settings.twilio_auth_token)


def _at_the_tone(twilio) -> str:
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    twilio.post("/ivr/welcome", call_params(call_sid, Digits="1"))
    twilio.post("/ivr/anonymity", call_params(call_sid, Digits="1"))
    twilio.post("/ivr/category", call_params(call_sid, Digits="1"))
    return call_sid


def _recording(settings, sid: str | None = None) -> tuple[str, str]:
    sid = sid or "RE" + secrets.token_hex(16)
    return sid, f"{settings.twilio_api_base.rstrip('/')}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"


def _no_traceback_and_no_error(records) -> None:
    for record in records:
        assert record.exc_info is None and record.stack_info is None, record.getMessage()
        assert record.levelno < logging.ERROR, record.getMessage()
        assert "Traceback" not in record.getMessage()


def _recording_request(endpoint: str, call_sid: str, sid: str, url: str, **change: str) -> dict[str, str]:
    if endpoint == "/ivr/recorded":
        params = call_params(call_sid, RecordingSid=sid, RecordingUrl=url, RecordingDuration="3", Digits="#")
    else:  # the recording status callback carries only these
        params = {"AccountSid": ACCOUNT_SID, "CallSid": call_sid, "RecordingSid": sid, "RecordingUrl": url,
                  "RecordingStatus": "completed", "RecordingDuration": "3", "RecordingChannels": "1",
                  "RecordingSource": "RecordVerb", "ErrorCode": "0"}
    params.update(change)
    return params


# --- RecordingDuration --------------------------------------------------------------------------------

@pytest.mark.parametrize("duration", [
    "abc", "--5", "²", "9" * 20, "3000000000", "5\n", "-2", "٣", "1_0", " 5",
])
@pytest.mark.parametrize("endpoint", ["/ivr/recorded", "/ivr/recording-status"])
def test_a_malformed_recording_duration_is_a_400_that_writes_nothing(twilio, hotline, settings, captured_logs,
                                                                     endpoint, duration):
    call_sid = _at_the_tone(twilio)
    before = table_contents(hotline.db)
    sid, url = _recording(settings)
    response = twilio.post(endpoint, _recording_request(endpoint, call_sid, sid, url, RecordingDuration=duration))
    assert response.status_code == 400
    assert table_contents(hotline.db) == before
    _no_traceback_and_no_error(captured_logs.records)
    if len(duration.strip()) >= 3:
        assert duration.strip() not in captured_logs.text  # the value itself is never logged


@pytest.mark.parametrize("duration, stored", [("-1", None), ("0", 0), ("3", 3), ("86400", 86400), ("", None)])
def test_twilios_own_durations_are_accepted(twilio, hotline, settings, duration, stored):
    call_sid = _at_the_tone(twilio)
    sid, url = _recording(settings)
    params = _recording_request("/ivr/recording-status", call_sid, sid, url, RecordingDuration=duration)
    assert twilio.post("/ivr/recording-status", params).status_code == 204
    with hotline.db.session() as session:
        assert session.scalar(select(Recording.duration_seconds)) == stored


# --- CallStatus ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", ["x" * 17, "hacked", "completed\n", "COMPLETED", "", "complete"])
def test_a_call_status_twilio_never_sends_is_a_400_that_writes_nothing(twilio, hotline, captured_logs, status):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    before = table_contents(hotline.db)
    response = twilio.post("/ivr/status", call_params(call_sid, CallStatus=status, CallDuration="40"))
    assert response.status_code == 400
    assert table_contents(hotline.db) == before
    _no_traceback_and_no_error(captured_logs.records)


def test_a_status_callback_without_a_call_status_is_a_400(twilio, hotline):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    params = call_params(call_sid)
    del params["CallStatus"]
    before = table_contents(hotline.db)
    assert twilio.post("/ivr/status", params).status_code == 400
    assert table_contents(hotline.db) == before


@pytest.mark.parametrize("status", ["completed", "busy", "failed", "no-answer", "canceled"])
def test_every_final_call_status_is_stored_as_twilio_spells_it(twilio, hotline, status):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    assert twilio.post("/ivr/status", call_params(call_sid, CallStatus=status)).status_code == 204
    with hotline.db.session() as session:
        call = session.scalar(select(Call))
        assert call.status is CallStatus(status)  # an enum of Twilio's values only, read back
        assert session.scalar(text("SELECT status FROM calls")) == status  # stored as Twilio spells it


@pytest.mark.parametrize("status", ["queued", "initiated", "ringing", "in-progress"])
def test_a_call_still_in_progress_changes_nothing(twilio, hotline, status):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    before = table_contents(hotline.db)
    assert twilio.post("/ivr/status", call_params(call_sid, CallStatus=status)).status_code == 204
    assert table_contents(hotline.db) == before


# --- ids and digits: full matches only -----------------------------------------------------------------

def test_a_call_sid_with_a_trailing_newline_is_a_400_that_writes_nothing(twilio, hotline):
    before = table_contents(hotline.db)
    assert twilio.post("/ivr/voice", call_params(new_call_sid() + "\n")).status_code == 400
    assert table_contents(hotline.db) == before


@pytest.mark.parametrize("endpoint", ["/ivr/recorded", "/ivr/recording-status"])
def test_a_recording_sid_with_a_trailing_newline_is_a_400_that_writes_nothing(twilio, hotline, settings, endpoint):
    call_sid = _at_the_tone(twilio)
    sid, url = _recording(settings)
    before = table_contents(hotline.db)
    response = twilio.post(endpoint, _recording_request(endpoint, call_sid, sid + "\n", url))
    assert response.status_code == 400
    assert table_contents(hotline.db) == before


def test_a_take_with_a_trailing_newline_is_a_400_that_writes_nothing(twilio, hotline, settings):
    call_sid = _at_the_tone(twilio)
    sid, url = _recording(settings)
    twilio.post("/ivr/recorded", _recording_request("/ivr/recorded", call_sid, sid, url))
    before = table_contents(hotline.db)
    response = twilio.post(f"/ivr/after-recording?take={sid}%0A", call_params(call_sid, Digits="2"))
    assert response.status_code == 400
    assert table_contents(hotline.db) == before


@pytest.mark.parametrize("digits", ["1\n", "1\n2", "١", "1 "])
def test_digits_with_anything_but_keypad_characters_are_a_400(twilio, hotline, digits):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    before = table_contents(hotline.db)
    assert twilio.post("/ivr/welcome", call_params(call_sid, Digits=digits)).status_code == 400
    assert table_contents(hotline.db) == before


@pytest.mark.parametrize("query", ["try=%C2%B2", "try=1%0A", "try=99999999999999999999", "try=1&try=2",
                                   "take=RE1", "take=a&take=b"])
def test_a_malformed_query_is_a_400(twilio, query):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    assert twilio.post(f"/ivr/welcome?{query}", call_params(call_sid)).status_code == 400


@pytest.mark.parametrize("key", ["CallSid", "Digits", "AccountSid"])
def test_a_repeated_parameter_is_a_400(twilio, hotline, key):
    from werkzeug.datastructures import MultiDict

    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    params = MultiDict(call_params(call_sid, Digits="1"))
    params.add(key, {"CallSid": new_call_sid(), "Digits": "2", "AccountSid": ACCOUNT_SID}[key])
    before = table_contents(hotline.db)
    assert twilio.post("/ivr/welcome", params).status_code == 400
    assert table_contents(hotline.db) == before


def test_a_caller_number_in_other_scripts_digits_is_not_offered_back(twilio):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid, caller="+٤٤٧٧٠٠٩٠٠١٢٣"))
    body = twilio.post("/ivr/anonymity", call_params(call_sid, caller="+٤٤٧٧٠٠٩٠٠١٢٣", Digits="2")).get_data(as_text=True)
    check_twiml(body)
    assert "ending in" not in body  # asked to key a number instead of being offered this one


# --- one error handler: nothing reaches Flask's default error logging ------------------------------

def _explode(*args, **kwargs):
    raise RuntimeError(f"parser on fire +44{CALLER_DIGITS}")  # a message quoting caller data


@pytest.mark.parametrize("path", ["/ivr/voice", "/ivr/welcome", "/ivr/recorded"])
def test_an_unexpected_failure_in_a_step_apologises_and_logs_only_type_and_stack(
        twilio, production_app, hotline, monkeypatch, captured_logs, path):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    before = table_contents(hotline.db)
    monkeypatch.setattr("ivr.views.parse_call_event", _explode)
    response = twilio.post(path, call_params(call_sid, Digits="1"))
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    check_twiml(body)
    assert "something went wrong on our side" in body and "<Hangup" in body
    assert table_contents(hotline.db) == before
    assert "RuntimeError" in captured_logs.text and CALLER_DIGITS not in captured_logs.text
    assert all(record.exc_info is None for record in captured_logs.records)
    assert not [r for r in captured_logs.records if r.name == production_app.logger.name]


@pytest.mark.parametrize("path", ["/ivr/status", "/ivr/recording-status"])
def test_an_unexpected_failure_in_a_callback_is_logged_only_as_type_and_stack(
        twilio, production_app, hotline, monkeypatch, captured_logs, path):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    monkeypatch.setattr("ivr.views.parse_call_event", _explode)
    response = twilio.post(path, call_params(call_sid, CallStatus="completed"))
    assert response.status_code == 503  # nothing committed; Twilio may send it again
    assert "RuntimeError" in captured_logs.text and CALLER_DIGITS not in captured_logs.text
    assert all(record.exc_info is None for record in captured_logs.records)
    assert not [r for r in captured_logs.records if r.name == production_app.logger.name]


def test_the_blueprint_has_one_handler_for_every_exception():
    spec = bp.error_handler_spec
    assert list(spec) == [None] and list(spec[None]) == [None] and list(spec[None][None]) == [Exception]


def test_a_failure_waking_the_workers_does_not_undo_or_fail_the_step(twilio, hotline, settings, monkeypatch,
                                                                     captured_logs):
    call_sid = _at_the_tone(twilio)
    sid, url = _recording(settings)

    def broken(job_ids):
        raise ConnectionError(f"broker down +44{CALLER_DIGITS}")

    monkeypatch.setattr(hotline.dispatcher, "notify", broken)
    params = _recording_request("/ivr/recording-status", call_sid, sid, url)
    assert twilio.post("/ivr/recording-status", params).status_code == 204
    with hotline.db.session() as session:
        assert session.scalar(select(Recording.recording_sid)) == sid  # the job row is the truth
    assert "ConnectionError" in captured_logs.text and CALLER_DIGITS not in captured_logs.text
