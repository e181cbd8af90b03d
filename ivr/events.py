"""What a Twilio webhook tells us, as small typed values. The caller's number is carried only so the
flow can offer it back as a contact number; it is excluded from repr so it cannot slip into a log.

Parsing is strict: every value we read must be one Twilio sends, or the request is refused with
MalformedRequest (a 400) before anything is written. Patterns are ASCII-only and must match the whole
value (re.fullmatch, [0-9] rather than \\d, which also matches other scripts' digits, and no `$`, which
lets a trailing newline through); numbers are bounded; statuses are allow-listed enums; a parameter
we read may appear only once. Twilio's signature covers every value, so a malformed request is either
a change on Twilio's side or someone holding our auth token: either way it is refused, not stored.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Mapping

from jobs.twilio_rest import recording_url
from storage.models import CallStatus  # noqa: F401 - Twilio's CallStatus values, as Call.status stores them

CALL_SID = re.compile(r"CA[0-9a-f]{32}")
RECORDING_SID = re.compile(r"RE[0-9a-f]{32}")
# Keypad input. A Gather with a finish key but no numDigits takes as many keys as the caller presses,
# so the bound is generous: refusing a caller's own key presses would end their call.
DIGITS = re.compile(r"[0-9*#]{0,128}")
# Whole seconds; Twilio sends -1 when it does not know the length (an absent recording).
DURATION = re.compile(r"-1|[0-9]{1,6}")
MAX_DURATION_SECONDS = 24 * 60 * 60  # <Record> cannot run longer than a day
# Our own query parameter: which attempt at a menu this is (see ivr.twiml.TwimlRenderer.step_url).
ATTEMPT = re.compile(r"[0-9]{1,2}")
MAX_ATTEMPT = 10
# A number the flow may offer back: E.164, ASCII digits only. Withheld numbers arrive as words or junk
# and are simply not offered back; they never make a request malformed.
CALLER_NUMBER = re.compile(r"\+?[0-9]{7,15}")
# Twilio's stand-ins for a withheld caller ID (anonymous, restricted, blocked, unavailable, unknown): real
# E.164 shapes, so they would otherwise pass for a number the caller could be rung back on.
WITHHELD_STAND_INS = frozenset({"+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253"})

HANGUP = "hangup"  # the Digits value of a <Record> action when the caller hung up


class MalformedRequest(ValueError):
    """A webhook that Twilio would not send; the message names the field, never its value."""


class RecordingStatus(str, enum.Enum):
    """The RecordingStatus values of a recording status callback."""

    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    ABSENT = "absent"
    FAILED = "failed"


class DialStatus(enum.StrEnum):
    """The DialCallStatus values of a <Dial> action: how the handover to a call handler went."""

    COMPLETED = "completed"  # they spoke; one of them hung up
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def was_answered(self) -> bool:
        return self in (DialStatus.COMPLETED, DialStatus.ANSWERED)


@dataclass(frozen=True)
class RecordingEvent:
    recording_sid: str
    recording_url: str | None
    duration_seconds: int | None
    status: RecordingStatus | None  # only on the recording status callback


@dataclass(frozen=True)
class CallEvent:
    call_sid: str
    digits: str | None  # None: nothing pressed (the Gather timed out and we were redirected)
    attempt: int = 1
    caller_number: str | None = field(default=None, repr=False, compare=False)
    recording: RecordingEvent | None = None
    call_status: CallStatus | None = None
    take: str | None = None  # the RecordingSid an after-recording choice is about
    dial_status: DialStatus | None = None  # only on the action of a <Dial> (the handover)

    @property
    def hung_up(self) -> bool:
        return self.digits == HANGUP


def _one(values: Mapping[str, str], key: str) -> str | None:
    """The single value of key, or None; a repeated key is ambiguous, so malformed."""
    getlist = getattr(values, "getlist", None)
    if getlist is None:
        return values.get(key)
    found = getlist(key)
    if len(found) > 1:
        raise MalformedRequest(f"{key} is repeated")
    return found[0] if found else None


def _matches(pattern: re.Pattern, value: str | None) -> bool:
    return value is not None and pattern.fullmatch(value) is not None


def _enum(enum_class, value: str, key: str):
    try:
        return enum_class(value)
    except ValueError:
        raise MalformedRequest(f"{key} is not one Twilio sends") from None


def _duration(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    if not _matches(DURATION, value):
        raise MalformedRequest("RecordingDuration is not a whole number of seconds")
    seconds = int(value)
    if seconds > MAX_DURATION_SECONDS:
        raise MalformedRequest("RecordingDuration is out of range")
    return None if seconds < 0 else seconds


def _recording(form: Mapping[str, str], api_base: str, account_sid: str) -> RecordingEvent | None:
    sid = _one(form, "RecordingSid")
    if sid is None:
        return None
    if not _matches(RECORDING_SID, sid):
        raise MalformedRequest("RecordingSid is malformed")
    url = _one(form, "RecordingUrl") or None
    expected = recording_url(api_base, account_sid, sid)
    # Workers fetch recordings by SID, never from this URL; one that points anywhere else is not
    # Twilio's, so the request is refused rather than stored.
    if url is not None and url not in (expected, expected + ".wav"):
        raise MalformedRequest("RecordingUrl is not this account's recording at the Twilio API")
    duration = _duration(_one(form, "RecordingDuration"))
    status = _one(form, "RecordingStatus")
    return RecordingEvent(
        recording_sid=sid,
        recording_url=url,
        duration_seconds=duration,
        status=None if status is None else _enum(RecordingStatus, status, "RecordingStatus"),
    )


def _attempt(value: str | None) -> int:
    if value is None:
        return 1
    if not _matches(ATTEMPT, value):
        raise MalformedRequest("try is malformed")
    return max(1, min(int(value), MAX_ATTEMPT))


def _caller_number(value: str | None) -> str | None:
    """The caller's own number, or None when it was withheld (or is not a number at all)."""
    if value in WITHHELD_STAND_INS or not _matches(CALLER_NUMBER, value):
        return None
    return value


def parse_call_event(
    form: Mapping[str, str], query: Mapping[str, str], *, api_base: str, account_sid: str
) -> CallEvent:
    call_sid = _one(form, "CallSid")
    if not _matches(CALL_SID, call_sid):
        raise MalformedRequest("CallSid is missing or malformed")
    if _one(form, "AccountSid") != account_sid:
        raise MalformedRequest("AccountSid is not this hotline's account")
    digits = _one(form, "Digits")
    if digits is not None and digits != HANGUP and not _matches(DIGITS, digits):
        raise MalformedRequest("Digits is malformed")
    attempt = _attempt(_one(query, "try"))
    take = _one(query, "take")
    if take is not None and not _matches(RECORDING_SID, take):
        raise MalformedRequest("take is malformed")
    caller_number = _one(form, "From")
    call_status = _one(form, "CallStatus")
    dial_status = _one(form, "DialCallStatus")
    return CallEvent(
        call_sid=call_sid,
        take=take,
        digits=digits or None,
        attempt=attempt,
        caller_number=_caller_number(caller_number),
        recording=_recording(form, api_base, account_sid),
        call_status=None if call_status is None else _enum(CallStatus, call_status, "CallStatus"),
        dial_status=None if dial_status is None else _enum(DialStatus, dial_status, "DialCallStatus"),
    )
