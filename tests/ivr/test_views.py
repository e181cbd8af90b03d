"""The webhooks over HTTP: TwiML structure, callbacks, malformed requests and failures."""
from __future__ import annotations

import secrets

import pytest
from sqlalchemy import func, select

from jobs.worker import run_until_idle
from storage.db import Database
from storage.models import Call, Case, Job, Recording
from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL
from tests.support.audio import phone_wav
from tests.support.webhooks import SignedTwilio, call_params, check_twiml, new_call_sid


@pytest.fixture
def twilio(app, settings):
    return SignedTwilio(app.test_client(), settings.twilio_auth_token)


def _count(hotline, model) -> int:
    with hotline.db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("path, digits", [
    ("/ivr/voice", None), ("/ivr/welcome", "1"), ("/ivr/welcome", None), ("/ivr/welcome", "9"),
    ("/ivr/anonymity", "1"), ("/ivr/anonymity", "2"), ("/ivr/contact", "2"), ("/ivr/contact-number", "07700900111"),
    ("/ivr/contact-confirm", "1"), ("/ivr/category", "3"), ("/ivr/recorded", None), ("/ivr/after-recording", "3"),
    ("/ivr/reference", "12345674"), ("/ivr/pin", "1234"), ("/ivr/read-back", "1"), ("/ivr/read-back", None),
])
def test_every_step_answers_well_formed_twiml(twilio, path, digits):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    twilio.post("/ivr/anonymity", call_params(call_sid, Digits="2"))
    params = call_params(call_sid) if digits is None else call_params(call_sid, Digits=digits)
    response = twilio.post(path, params)
    assert response.status_code == 200 and response.mimetype == "text/xml"
    check_twiml(response.get_data(as_text=True))


def test_the_recording_verb_is_configured_as_promised(twilio, settings):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    twilio.post("/ivr/anonymity", call_params(call_sid, Digits="1"))
    root = check_twiml(twilio.post("/ivr/category", call_params(call_sid, Digits="1")).get_data(as_text=True))
    record = root.find("Record")
    assert record.attrib["maxLength"] == str(settings.max_recording_seconds) == "600"
    assert record.attrib["action"] == PUBLIC_BASE_URL + "/ivr/recorded"
    assert int(record.attrib["timeout"]) >= 5
    redirect = root.find("Redirect")  # silence instead of a report
    assert redirect.text == PUBLIC_BASE_URL + "/ivr/recorded"


@pytest.mark.parametrize("change", [
    {"CallSid": ""}, {"CallSid": "CA123"}, {"CallSid": "not-a-call"},
    {"AccountSid": "AC" + "f" * 32}, {"Digits": "1<script>"},
])
def test_a_malformed_webhook_is_a_400_and_stores_nothing(twilio, hotline, change):
    params = call_params(new_call_sid())
    params.update(change)
    response = twilio.post("/ivr/voice", params)
    assert response.status_code == 400
    assert _count(hotline, Call) == 0


@pytest.mark.parametrize("change", [
    {"RecordingSid": "RE1"},
    {"RecordingUrl": "https://attacker.example/2010-04-01/Accounts/X/Recordings/RE"},
    {"RecordingDuration": "ten"},
    {"RecordingStatus": "exploded"},
])
def test_a_malformed_recording_callback_is_a_400(twilio, hotline, fake_twilio, change):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    sid, url = fake_twilio.add_recording(phone_wav(0.5))
    params = call_params(call_sid, RecordingSid=sid, RecordingUrl=url, RecordingStatus="completed", RecordingDuration="1")
    params.update(change)
    assert twilio.post("/ivr/recording-status", params).status_code == 400
    assert _count(hotline, Recording) == 0


def test_an_unknown_step_is_a_404(twilio):
    assert twilio.post("/ivr/teleport", call_params(new_call_sid())).status_code == 404


def test_a_failure_inside_a_step_apologises_and_writes_nothing(twilio, hotline, monkeypatch, captured_logs):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))

    caller = "+44" + "7700900123"

    def broken(*args, **kwargs):
        raise RuntimeError(f"database on fire {caller}")  # an error message quoting caller data

    monkeypatch.setattr("ivr.desk.open_case_row", broken)
    response = twilio.post("/ivr/anonymity", call_params(call_sid, Digits="1"))
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    check_twiml(body)
    assert "something went wrong on our side" in body and "<Hangup" in body
    assert _count(hotline, Case) == 0
    assert "RuntimeError" in captured_logs.text and "7700900123" not in captured_logs.text


def _recording_callback(twilio, call_sid, sid, url, status="completed"):
    return twilio.post("/ivr/recording-status", call_params(
        call_sid, RecordingSid=sid, RecordingUrl=url, RecordingStatus=status, RecordingDuration="3",
        RecordingChannels="1", RecordingSource="RecordVerb",
    ))


def _record_action(twilio, call_sid, sid, url, digits="#"):
    return twilio.post("/ivr/recorded", call_params(
        call_sid, RecordingSid=sid, RecordingUrl=url, RecordingDuration="3", Digits=digits,
    ))


def _caller_at_the_tone(twilio) -> str:
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    twilio.post("/ivr/welcome", call_params(call_sid, Digits="1"))
    twilio.post("/ivr/anonymity", call_params(call_sid, Digits="1"))
    twilio.post("/ivr/category", call_params(call_sid, Digits="1"))
    return call_sid


@pytest.mark.parametrize("order", ["action-first", "callback-first"])
def test_duplicate_and_reordered_callbacks_store_the_recording_once(twilio, hotline, fake_twilio, order):
    call_sid = _caller_at_the_tone(twilio)
    sid, url = fake_twilio.add_recording(phone_wav(1.0), call_sid=call_sid)
    sends = [lambda: _record_action(twilio, call_sid, sid, url), lambda: _recording_callback(twilio, call_sid, sid, url)]
    if order == "callback-first":
        sends.reverse()
    for send in sends + sends:  # Twilio retries
        assert send().status_code in (200, 204)
    assert _count(hotline, Recording) == 1 and _count(hotline, Job) == 1
    run_until_idle(hotline.workshop)
    assert _recording_callback(twilio, call_sid, sid, url).status_code == 204  # a late retry
    run_until_idle(hotline.workshop)
    assert len(fake_twilio.requests("GET", sid)) == 1 and len(fake_twilio.requests("DELETE", sid)) == 1


def test_hanging_up_mid_recording_keeps_the_report(twilio, hotline, fake_twilio):
    call_sid = _caller_at_the_tone(twilio)
    sid, url = fake_twilio.add_recording(phone_wav(1.0), call_sid=call_sid)
    assert _record_action(twilio, call_sid, sid, url, digits="hangup").status_code == 200
    assert _recording_callback(twilio, call_sid, sid, url).status_code == 204
    assert twilio.post("/ivr/status", call_params(call_sid, CallStatus="completed", CallDuration="40")).status_code == 204
    run_until_idle(hotline.workshop)
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording))
        assert recording.decision == "keep" and recording.audio_item_id is not None


def test_a_take_whose_callback_never_came_is_fetched_after_the_call_ends(twilio, hotline, fake_twilio):
    call_sid = _caller_at_the_tone(twilio)
    sid, url = fake_twilio.add_recording(phone_wav(1.0), call_sid=call_sid)
    _record_action(twilio, call_sid, sid, url, digits="hangup")
    twilio.post("/ivr/status", call_params(call_sid, CallStatus="completed"))
    with hotline.db.session() as session:
        assert {job.kind for job in session.scalars(select(Job))} == {"store-recording", "delete-call"}


def test_absent_recording_is_noted(twilio, hotline, fake_twilio):
    call_sid = _caller_at_the_tone(twilio)
    sid = "RE" + secrets.token_hex(16)
    url = f"{fake_twilio.api_base}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"
    assert _recording_callback(twilio, call_sid, sid, url, status="absent").status_code == 204
    with hotline.db.session() as session:
        assert session.scalar(select(Recording.twilio_status)) == "absent"
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_call_status_callback_is_idempotent(twilio, hotline):
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    for _ in range(2):
        assert twilio.post("/ivr/status", call_params(call_sid, CallStatus="completed")).status_code == 204
    with hotline.db.session() as session:
        call = session.scalar(select(Call))
        assert call.status == "completed" and call.ended_at is not None


def test_healthz(app):
    assert app.test_client().get("/healthz").status_code == 200


def test_healthz_reports_an_unreachable_database(app, hotline, tmp_path):
    hotline.db = Database(f"sqlite:///{tmp_path / 'no such folder' / 'hotline.db'}")
    assert app.test_client().get("/healthz").status_code == 503
