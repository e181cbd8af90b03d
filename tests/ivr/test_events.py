"""Parsing a webhook's form and query: strict, whole-value, ASCII-only, bounded (no database here)."""
from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from ivr.events import CallStatus, MalformedRequest, RecordingStatus, parse_call_event
from jobs.twilio_rest import recording_url

ACCOUNT = "AC" + "0" * 31 + "1"
API = "https://api.twilio.test"
CALL = "CA" + "a" * 32
TAKE = "RE" + "b" * 32


def _parse(query=None, **form):
    values = {"AccountSid": ACCOUNT, "CallSid": CALL, **form}
    return parse_call_event(MultiDict(values), MultiDict(query or {}), api_base=API, account_sid=ACCOUNT)


def test_a_webhook_as_twilio_sends_it():
    event = _parse({"try": "2", "take": TAKE}, Digits="1", From="+447700900123", CallStatus="in-progress",
                   RecordingSid=TAKE, RecordingUrl=recording_url(API, ACCOUNT, TAKE), RecordingDuration="12",
                   RecordingStatus="completed")
    assert (event.call_sid, event.digits, event.attempt, event.take) == (CALL, "1", 2, TAKE)
    assert event.call_status is CallStatus.IN_PROGRESS and not event.call_status.is_final
    assert event.recording.duration_seconds == 12 and event.recording.status is RecordingStatus.COMPLETED
    assert event.caller_number == "+447700900123" and "7700900123" not in repr(event)


@pytest.mark.parametrize("field, value", [
    ("CallSid", CALL + "\n"), ("CallSid", CALL.upper()), ("CallSid", "CA" + "٣" * 32), ("CallSid", ""),
    ("RecordingSid", TAKE + "\n"), ("RecordingSid", "RE" + "５" * 32),
    ("Digits", "1\n"), ("Digits", "١"), ("Digits", "1" * 129), ("Digits", "hangup\n"),
    ("RecordingDuration", "--5"), ("RecordingDuration", "²"), ("RecordingDuration", "9" * 20),
    ("RecordingDuration", "3000000000"), ("RecordingDuration", "86401"), ("RecordingDuration", "-2"),
    ("RecordingDuration", "5\n"), ("RecordingDuration", "+5"), ("RecordingDuration", "1_0"),
    ("CallStatus", "x" * 17), ("CallStatus", "completed\n"), ("CallStatus", "COMPLETED"), ("CallStatus", ""),
    ("RecordingStatus", "completed\n"), ("RecordingStatus", "deleted"),
    ("AccountSid", ACCOUNT + "\n"),
])
def test_a_value_twilio_never_sends_is_malformed(field, value):
    form = {"RecordingSid": TAKE} if field.startswith("Recording") and field != "RecordingSid" else {}
    form[field] = value
    with pytest.raises(MalformedRequest) as raised:
        _parse(**form)
    assert value.strip() not in str(raised.value) or not value.strip()  # names the field, never the value


@pytest.mark.parametrize("query", [{"try": "²"}, {"try": "1\n"}, {"try": "9" * 20}, {"try": ""},
                                   {"take": TAKE + "\n"}, {"take": "RE1"}])
def test_a_malformed_query_is_malformed(query):
    with pytest.raises(MalformedRequest):
        _parse(query)


@pytest.mark.parametrize("key", ["CallSid", "AccountSid", "Digits", "From", "CallStatus", "RecordingSid"])
def test_a_repeated_parameter_is_malformed(key):
    form = MultiDict({"AccountSid": ACCOUNT, "CallSid": CALL, "Digits": "1", "From": "+447700900123",
                      "CallStatus": "completed", "RecordingSid": TAKE})
    form.add(key, form[key])
    with pytest.raises(MalformedRequest, match=f"{key} is repeated"):
        parse_call_event(form, MultiDict(), api_base=API, account_sid=ACCOUNT)


@pytest.mark.parametrize("duration, seconds", [("-1", None), ("", None), ("0", 0), ("600", 600), ("86400", 86400)])
def test_twilios_durations(duration, seconds):
    assert _parse(RecordingSid=TAKE, RecordingDuration=duration).recording.duration_seconds == seconds


@pytest.mark.parametrize("attempt, parsed", [("1", 1), ("3", 3), ("0", 1), ("99", 10)])
def test_the_attempt_is_clamped(attempt, parsed):
    assert _parse({"try": attempt}).attempt == parsed


@pytest.mark.parametrize("number", ["+٤٤٧٧٠٠٩٠٠١٢٣", "anonymous", "", "+44 7700 900123", "+447700900123\n",
                                    "+" + "1" * 16, "²²²²²²²²"])
def test_a_caller_number_that_is_not_plain_ascii_e164_is_not_offered_back(number):
    assert _parse(From=number).caller_number is None


def test_every_final_status_is_final():
    assert {s.value for s in CallStatus if s.is_final} == {"completed", "busy", "failed", "no-answer", "canceled"}


@pytest.mark.parametrize("stand_in", ["+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253"])
def test_twilios_stand_ins_for_a_withheld_number_are_no_number(stand_in):
    # Twilio sends these E.164-shaped numbers for an anonymous, restricted or unknown caller ID: taken at
    # face value, the contact menu would offer a withheld caller "the number ending in 6, 8, 7".
    assert _parse(From=stand_in).caller_number is None
