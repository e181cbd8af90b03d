"""What a Twilio webhook tells us, as small typed values. The caller's number is carried only so the
flow can offer it back as a contact number; it is excluded from repr so it cannot slip into a log."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from jobs.twilio_rest import recording_url

CALL_SID = re.compile(r"^CA[0-9a-f]{32}$")
RECORDING_SID = re.compile(r"^RE[0-9a-f]{32}$")
DIGITS = re.compile(r"^[0-9*#]{0,32}$")


class MalformedRequest(ValueError):
    """A webhook that Twilio would not send; the message names the field, never its value."""


@dataclass(frozen=True)
class RecordingEvent:
    recording_sid: str
    recording_url: str | None
    duration_seconds: int | None
    status: str | None  # only on the recording status callback


@dataclass(frozen=True)
class CallEvent:
    call_sid: str
    digits: str | None  # None: nothing pressed (the Gather timed out and we were redirected)
    attempt: int = 1
    caller_number: str | None = field(default=None, repr=False, compare=False)
    recording: RecordingEvent | None = None
    call_status: str | None = None
    take: str | None = None  # the RecordingSid an after-recording choice is about

    @property
    def hung_up(self) -> bool:
        return self.digits == "hangup"


def _recording(form: Mapping[str, str], api_base: str, account_sid: str) -> RecordingEvent | None:
    sid = form.get("RecordingSid")
    if sid is None:
        return None
    if not RECORDING_SID.match(sid):
        raise MalformedRequest("RecordingSid is malformed")
    url = form.get("RecordingUrl") or None
    expected = recording_url(api_base, account_sid, sid)
    # Workers fetch recordings by SID, never from this URL; one that points anywhere else is not
    # Twilio's, so the request is refused rather than stored.
    if url is not None and url not in (expected, expected + ".wav"):
        raise MalformedRequest("RecordingUrl is not this account's recording at the Twilio API")
    duration = form.get("RecordingDuration")
    if duration not in (None, "") and not (duration.lstrip("-").isdigit()):
        raise MalformedRequest("RecordingDuration is not a number")
    status = form.get("RecordingStatus")
    if status is not None and status not in ("in-progress", "completed", "absent", "failed"):
        raise MalformedRequest("RecordingStatus is not one Twilio sends")
    return RecordingEvent(
        recording_sid=sid,
        recording_url=url,
        duration_seconds=int(duration) if duration not in (None, "") else None,
        status=status,
    )


def parse_call_event(
    form: Mapping[str, str], query: Mapping[str, str], *, api_base: str, account_sid: str
) -> CallEvent:
    call_sid = form.get("CallSid", "")
    if not CALL_SID.match(call_sid):
        raise MalformedRequest("CallSid is missing or malformed")
    if form.get("AccountSid") != account_sid:
        raise MalformedRequest("AccountSid is not this hotline's account")
    digits = form.get("Digits")
    if digits is not None and digits != "hangup" and not DIGITS.match(digits):
        raise MalformedRequest("Digits is malformed")
    try:
        attempt = max(1, min(int(query.get("try", "1")), 10))
    except ValueError:
        attempt = 1
    take = query.get("take")
    if take is not None and not RECORDING_SID.match(take):
        raise MalformedRequest("take is malformed")
    return CallEvent(
        call_sid=call_sid,
        take=take,
        digits=digits or None,
        attempt=attempt,
        caller_number=form.get("From") or None,
        recording=_recording(form, api_base, account_sid),
        call_status=form.get("CallStatus"),
    )
