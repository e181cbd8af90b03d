"""Help on the line through Twilio's side of real calls: signed webhooks to the real app, TwiML
followed as Twilio follows it. The support services, the quick exit on the star key, and the live
handover to the duty handler in and out of opening hours, with the app's clock set by the test."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr import prompts
from ivr.handover import CLOCK, OpeningHours
from simulator import DEFAULT_HOTLINE_NUMBER, CallSimulator, FakeTwilio
from storage.models import Call, Job, Recording
from tests.conftest import ACCOUNT_SID
from tests.support.audio import phone_wav

DUTY_PHONE = "+441632960999"
CALLER = "+447700900456"
MONDAY_MORNING = datetime(2026, 7, 6, 9, 30, tzinfo=timezone.utc)  # 10:30 in London (BST)
MONDAY_EVENING = datetime(2026, 7, 6, 16, 30, tzinfo=timezone.utc)  # 17:30 in London: closed


class SetClock:
    """The app's clock, set by the test (the line reads it to decide its opening hours)."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def database_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'hotline.db'}"


@pytest.fixture
def fake_twilio(twilio_auth_token):
    with FakeTwilio(ACCOUNT_SID, twilio_auth_token) as fake:  # the hotline's account, not the toy's
        yield fake


@pytest.fixture
def clock():
    return SetClock(MONDAY_MORNING)


@pytest.fixture
def line(settings, clock):
    from app import create_app

    app = create_app(settings.with_overrides(
        handover_number=DUTY_PHONE, hotline_number=DEFAULT_HOTLINE_NUMBER,
        opening_hours=OpeningHours.parse("Mon-Fri 09:00-17:00"),
    ))
    app.extensions[CLOCK] = clock
    yield app
    app.extensions["hotline"].db.dispose()


@pytest.fixture
def twilio(line, settings, fake_twilio):
    return CallSimulator.for_flask_app(
        line, public_base_url=settings.public_base_url, account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token, fake_twilio=fake_twilio,
    )


def _ended_by_the_line_at_once(call) -> bool:
    return call.is_over and call.ended_by == "hotline" and call.heard_since_last_action == [] \
        and call.last_document.names() == ["Hangup"]


# --- help and support --------------------------------------------------------------------------

def test_a_caller_hears_where_to_get_help_again_and_then_makes_a_report(twilio):
    caller = twilio.dial(from_=CALLER)
    assert caller.hears("It is safe to do so, and anything you have already recorded is kept")
    caller.presses("3")
    assert caller.hears("For the National Domestic Abuse Helpline, free, at any time, call 0, 8, 0, 8. 2, 0, 0, 0. 2, 4, 7.")
    assert caller.hears("For Samaritans, free, at any time, call 1, 1, 6. 1, 2, 3.")
    [gather] = caller.last_document.find("Gather")
    assert [child.name for child in gather.children].count("Pause") >= len(prompts.SUPPORT_SERVICES)
    caller.presses("1")
    assert caller.hears("call 9, 9, 9.") and caller.hears(prompts.HELP_MENU)
    caller.presses("2")
    assert caller.hears("To stay anonymous, press 1")
    for key in "13":
        caller.presses(key)
    caller.says(phone_wav(1.0))
    caller.presses("1")
    assert caller.hears("Your case reference is")


# --- the quick exit ----------------------------------------------------------------------------

def test_the_star_key_at_the_welcome_ends_the_call_at_once(twilio):
    caller = twilio.dial(from_=CALLER)
    assert caller.hears("press the star key at any time")
    caller.presses("*")
    assert _ended_by_the_line_at_once(caller)
    assert [e.status for e in caller.requests("call-status")] == [204]


def test_the_star_key_during_a_recording_ends_it_keeps_it_and_ends_the_call(twilio, line):
    caller = twilio.dial(from_=CALLER)
    for key in "111":
        caller.presses(key)
    caller.says(phone_wav(2.0), then="*")
    assert _ended_by_the_line_at_once(caller)
    [sid] = caller.recording_sids
    with line.extensions["hotline"].db.session() as session:
        recording = session.scalar(select(Recording).where(Recording.recording_sid == sid))
        assert recording.decision == "keep" and recording.twilio_status == "completed"
        assert session.scalar(select(Job.kind).where(Job.recording_id == recording.id)) == "store-recording"


def test_the_star_key_while_keying_a_pin_ends_the_call_and_counts_no_failure(twilio, line):
    caller = twilio.dial(from_=CALLER)
    caller.presses("2")
    caller.presses("12345678")
    caller.presses("40*")  # the keys so far and the star travel together once the keying times out
    assert _ended_by_the_line_at_once(caller)
    with line.extensions["hotline"].db.session() as session:
        assert session.scalar(select(Call.failed_unlocks).where(Call.call_sid == caller.call_sid)) == 0


# --- the live handover -------------------------------------------------------------------------

def test_in_opening_hours_a_caller_is_put_through_and_the_handler_sees_only_the_hotline(twilio, fake_twilio):
    caller = twilio.dial(from_=CALLER)
    assert caller.hears(prompts.HANDOVER_OFFER)
    caller.presses("0")
    assert caller.hears(prompts.HANDOVER_CONNECTING) and caller.waiting_for == "dial"
    [dial] = caller.last_document.find("Dial")
    assert dial.attributes == {"action": "https://hotline.test/ivr/handover-ended", "callerId": DEFAULT_HOTLINE_NUMBER,
                               "method": "POST", "timeout": "30"}
    assert dial.text == DUTY_PHONE and dial.children == ()  # no <Number url> whisper, no sendDigits
    [handover] = caller.dials
    assert handover.shown_as == DEFAULT_HOTLINE_NUMBER
    # Twilio's record of the call to the handler holds the hotline's number, never the caller's.
    child = fake_twilio.calls[handover.sid]
    assert (child.from_, child.to) == (DEFAULT_HOTLINE_NUMBER, DUTY_PHONE)
    assert CALLER not in caller.last_twiml

    caller.dial_answered(talk_seconds=120, ended_by="callee")
    assert caller.hears(prompts.HANDOVER_ENDED) and caller.hears(prompts.MAIN_MENU)
    caller.presses("1")
    assert caller.hears("To stay anonymous, press 1")


@pytest.mark.parametrize("far_end", ["dial_unanswered", "dial_busy", "dial_failed"])
def test_when_no_handler_answers_the_caller_is_offered_to_leave_a_report(twilio, far_end):
    caller = twilio.dial(from_=CALLER)
    caller.presses("0")
    getattr(caller, far_end)()
    assert caller.hears(prompts.HANDOVER_NO_ANSWER)
    caller.presses("1")
    caller.presses("1")
    assert caller.hears("What is your report about?")


def test_a_caller_who_hangs_up_on_the_handler_ends_the_call(twilio):
    caller = twilio.dial(from_=CALLER)
    caller.presses("0")
    caller.dial_answered(talk_seconds=30, ended_by="caller")
    assert caller.is_over and caller.ended_by == "caller"
    assert [e.status for e in caller.requests("dial-action")] == [200]  # answered with TwiML Twilio ignores
    assert [e.status for e in caller.requests("call-status")] == [204]


def test_outside_opening_hours_the_handover_is_neither_offered_nor_accepted(twilio, clock):
    clock.now = MONDAY_EVENING
    caller = twilio.dial(from_=CALLER)
    assert not caller.hears(prompts.HANDOVER_OFFER)
    caller.presses("0")
    assert caller.hears(prompts.NOT_AN_OPTION) and caller.hears(prompts.MAIN_MENU)
    assert caller.dials == [] and not any(document.find("Dial") for document in caller.documents)


def test_the_hours_are_checked_when_0_is_pressed_not_only_when_the_menu_was_said(twilio, clock):
    clock.now = datetime(2026, 7, 6, 15, 59, tzinfo=timezone.utc)  # 16:59 in London
    late = twilio.dial(from_=CALLER)
    assert late.hears(prompts.HANDOVER_OFFER)
    clock.now = datetime(2026, 7, 6, 16, 0, tzinfo=timezone.utc)  # 17:00: closed while the menu was read
    late.presses("0")
    assert late.hears(prompts.NOT_AN_OPTION) and not late.hears(prompts.HANDOVER_OFFER)
    assert late.dials == []

    clock.now = datetime(2026, 7, 6, 7, 59, tzinfo=timezone.utc)  # 08:59 the next morning
    early = twilio.dial(from_=CALLER)
    assert not early.hears(prompts.HANDOVER_OFFER)
    clock.now = datetime(2026, 7, 6, 8, 0, tzinfo=timezone.utc)  # 09:00: open, so a handler is rung
    early.presses("0")
    assert early.waiting_for == "dial"


def test_a_dial_status_twilio_does_not_send_is_refused_before_anything_is_written(twilio):
    caller = twilio.dial(from_=CALLER)
    response = caller.post("/ivr/handover-ended", {"DialCallStatus": "maybe"})
    assert response.status == 400


# --- the simulator's <Dial>, on the toy app --------------------------------------------------------

def twiml(*verbs: str) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(verbs) + "</Response>"


def test_the_simulator_shows_the_caller_s_own_number_to_a_dial_without_caller_id(sim, toy, fake_twilio):
    """The danger the line's callerId avoids: Twilio's default shows the caller to the dialled phone."""
    toy.serve("after", twiml("<Say>Nobody is free.</Say><Hangup/>"))
    path = toy.serve("dial", twiml(f'<Dial action="/ivr/t/after" timeout="10">{DUTY_PHONE}</Dial>'))
    call = sim.dial(from_=CALLER, voice_path=path)
    assert call.waiting_for == "dial"
    [dialed] = call.dials
    assert dialed.shown_as == CALLER and fake_twilio.calls[dialed.sid].from_ == CALLER
    call.dial_busy()
    assert call.hears("Nobody is free.") and call.is_over
    [action] = toy.on("/ivr/t/after")
    assert (action.params["DialCallStatus"], action.params["DialCallSid"], action.params["DialBridged"]) == \
        ("busy", dialed.sid, "false")
    assert fake_twilio.calls[dialed.sid].status == "busy"


def test_a_simulated_dial_without_an_action_goes_on_to_the_next_verb(sim, toy):
    path = toy.serve("dial", twiml(f'<Dial callerId="{DEFAULT_HOTLINE_NUMBER}"><Number>{DUTY_PHONE}</Number></Dial>',
                                   "<Say>Back with the line.</Say>"))
    call = sim.dial(from_=CALLER, voice_path=path)
    assert call.dials[0].shown_as == DEFAULT_HOTLINE_NUMBER
    call.dial_answered(talk_seconds=5)
    assert call.hears("Back with the line.") and call.dials[0].status == "completed"
    assert call.requests("dial-action") == []
