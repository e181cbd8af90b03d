"""Help on the line, in the call flow: the support services, the quick exit on the star key, and the
live handover to a call handler in opening hours. Stepped through the flow with the database desk."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr import prompts
from ivr.desk import SqlCallDesk
from ivr.events import CallEvent, DialStatus, RecordingEvent
from ivr.flow import CallFlow, FlowOptions
from ivr.handover import Handover, OpeningHours
from ivr.reply import Dial, Gather, Hangup, Pause, Record, Redirect, Reply, Say
from settings import ConfigError, Settings
from storage.models import Call, Case, Recording

DUTY_PHONE = "+441632960999"
HOTLINE_NUMBER = "+441632960000"
CALLER = "+447700900321"
WEEKDAYS_NINE_TO_FIVE = OpeningHours.parse("Mon-Fri 09:00-17:00")
MONDAY_MORNING = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
MONDAY_EVENING = datetime(2026, 1, 5, 19, 0, tzinfo=timezone.utc)
SATURDAY_NOON = datetime(2026, 7, 11, 11, 0, tzinfo=timezone.utc)


@pytest.fixture
def database_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'hotline.db'}"  # the flow's own logic; the desk is tested on both elsewhere


def with_handover(at: datetime, **options) -> FlowOptions:
    return FlowOptions(handover=Handover(DUTY_PHONE, HOTLINE_NUMBER, WEEKDAYS_NINE_TO_FIVE), clock=lambda: at, **options)


class FlowCall:
    """One call, stepped through the flow the way Twilio follows the replies."""

    def __init__(self, hotline, options: FlowOptions | None = None):
        self.hotline = hotline
        self.options = options or FlowOptions()
        self.call_sid = "CA" + secrets.token_hex(16)
        self.reply = self._send("voice", None)

    def _send(self, step: str, digits: str | None, attempt: int = 1, take: str | None = None, **event) -> Reply:
        with self.hotline.db.session() as session:
            desk = SqlCallDesk(session, self.hotline.sealer, self.hotline.settings.pin_key)
            reply = CallFlow(desk, self.options).handle(step, CallEvent(self.call_sid, digits, attempt, CALLER, take=take, **event))
            session.commit()
        return reply

    @property
    def waiting_for(self):
        return next(v for v in self.reply.verbs if isinstance(v, (Gather, Record, Dial)))

    def presses(self, digits: str) -> Reply:
        gather = self.waiting_for
        assert isinstance(gather, Gather)
        self.reply = self._send(gather.step, digits, gather.attempt, gather.take)
        return self.reply

    def waits(self) -> Reply:
        redirect = next(v for v in self.reply.verbs if isinstance(v, Redirect))
        self.reply = self._send(redirect.step, None, redirect.attempt, redirect.take)
        return self.reply

    def records(self, digits: str = "#") -> str:
        record = self.waiting_for
        assert isinstance(record, Record)
        sid = "RE" + secrets.token_hex(16)
        self.reply = self._send(record.step, digits, record.attempt, recording=RecordingEvent(sid, None, 12, None))
        return sid

    def dial_ends(self, status: str) -> Reply:
        dial = self.waiting_for
        assert isinstance(dial, Dial)
        self.reply = self._send(dial.step, None, dial_status=DialStatus(status))
        return self.reply

    def hears(self, text: str) -> bool:
        return text.lower() in self.reply.spoken().lower()

    @property
    def hung_up_at_once(self) -> bool:
        return self.reply == Reply.of(Hangup())


@pytest.fixture
def call(hotline):
    return FlowCall(hotline)


# --- the welcome -------------------------------------------------------------------------------

def test_the_welcome_says_hanging_up_is_safe_and_the_star_key_ends_the_call(call):
    assert call.hears("hang up at any moment") and call.hears("anything you have already recorded is kept")
    assert call.hears("press the star key at any time")
    gather = call.waiting_for
    assert Say(prompts.QUICK_EXIT) in gather.prompts  # inside the menu, so the star key works while it is said
    assert call.hears("help and support, press 3")


# --- help and support --------------------------------------------------------------------------

def test_help_reads_each_support_service_slowly_digit_by_digit(call):
    call.presses("3")
    assert call.hears(prompts.HELP_INTRO)
    assert call.hears("For help if you or someone else is in danger now, call 9, 9, 9.")
    assert call.hears("For the National Domestic Abuse Helpline, free, at any time, call 0, 8, 0, 8. 2, 0, 0, 0. 2, 4, 7.")
    assert call.hears("For Victim Support, free, at any time, call 0, 8, 0, 8. 1, 6, 8. 9, 1, 1, 1.")
    assert call.hears("For Samaritans, free, at any time, call 1, 1, 6. 1, 2, 3.")
    gather = call.waiting_for
    said = [p for p in gather.prompts if isinstance(p, Say)]
    assert len(said) == 2 + len(prompts.SUPPORT_SERVICES)  # the intro, one per service, the choice
    after_each_service = [gather.prompts[gather.prompts.index(s) + 1] for s in said[1:-1]]
    assert all(isinstance(pause, Pause) and pause.seconds >= 2 for pause in after_each_service)
    assert said[-1] == Say(prompts.HELP_MENU)  # a key pressed at any point of the list is heard


def test_a_caller_hears_the_numbers_again_then_goes_on_to_make_a_report(call, hotline):
    call.presses("3")
    call.presses("1")
    assert call.hears(prompts.HELP_INTRO) and call.hears("call 1, 1, 6. 1, 2, 3.")
    call.presses("2")
    assert call.hears("To stay anonymous, press 1")
    call.presses("1"); call.presses("3")
    call.records()
    call.presses("1")
    assert call.hears("Your case reference is")
    with hotline.db.session() as session:
        assert session.scalar(select(Case.category)) == "domestic-abuse"


def test_the_help_branch_reads_the_configured_list(hotline):
    call = FlowCall(hotline, FlowOptions(support_services=(("Rape Crisis", "0808 500 2222"),)))
    call.presses("3")
    assert call.hears("For Rape Crisis, call 0, 8, 0, 8. 5, 0, 0. 2, 2, 2, 2.")
    assert not call.hears("Samaritans")


def test_silence_after_the_help_asks_twice_more_then_says_goodbye(call):
    call.presses("3")
    call.waits()
    assert call.hears(prompts.NO_INPUT) and call.hears(prompts.HELP_MENU)
    call.waits(); call.waits()
    assert call.hears(prompts.NO_INPUT_GOODBYE) and call.reply.verbs[-1] == Hangup()


# --- the quick exit ----------------------------------------------------------------------------

ROUTES_TO_EVERY_MENU = {  # keys pressed to reach the menu, then what the caller keys in there
    "welcome": ([], "*"),
    "help": (["3"], "*"),
    "anonymity": (["1"], "*"),
    "contact": (["1", "2"], "*"),
    "contact-number": (["1", "2", "2"], "07700*"),
    "category": (["1", "1"], "*"),
    "reference": (["2"], "1234*"),
    "pin": (["2", "12345678"], "40*"),
}


@pytest.mark.parametrize("menu", ROUTES_TO_EVERY_MENU)
def test_the_star_key_ends_the_call_at_once_from_every_menu(call, menu):
    route, keys = ROUTES_TO_EVERY_MENU[menu]
    for key in route:
        call.presses(key)
    assert call.waiting_for.step == menu
    call.presses(keys)
    assert call.hung_up_at_once  # not a word: someone may have walked in


def test_the_star_key_after_a_take_and_at_the_read_back_ends_the_call(call, hotline):
    call.presses("1"); call.presses("1"); call.presses("2")
    sid = call.records()
    call.presses("*")
    assert call.hung_up_at_once
    with hotline.db.session() as session:
        assert session.scalar(select(Recording.decision).where(Recording.recording_sid == sid)) == "keep"

    again = FlowCall(hotline)
    again.presses("1"); again.presses("1"); again.presses("2")
    again.records()
    again.presses("1")
    assert again.waiting_for.step == "read-back"
    again.presses("*")
    assert again.hung_up_at_once


def test_the_star_key_ends_a_take_which_is_kept_and_the_call_ends(call, hotline):
    call.presses("1"); call.presses("1"); call.presses("1")
    assert call.waiting_for.finish_on_key == "#*"
    sid = call.records(digits="*")
    assert call.hung_up_at_once
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording).where(Recording.recording_sid == sid))
        assert recording.decision == "keep" and recording.duration_seconds == 12


def test_the_star_key_while_keying_a_pin_is_not_a_failed_unlock(call, hotline):
    call.presses("2"); call.presses("12345678")
    call.presses("1*")
    assert call.hung_up_at_once
    with hotline.db.session() as session:
        assert session.scalar(select(Call.failed_unlocks).where(Call.call_sid == call.call_sid)) == 0


# --- the live handover -------------------------------------------------------------------------

def test_in_opening_hours_the_menu_offers_a_call_handler_and_0_dials_the_duty_phone(hotline):
    call = FlowCall(hotline, with_handover(MONDAY_MORNING))
    assert call.hears(prompts.HANDOVER_OFFER)
    call.presses("0")
    assert call.hears(prompts.HANDOVER_CONNECTING)
    # Exactly this and nothing more: the handler's phone shows the hotline's number, and no reference,
    # no caller number, no whisper goes with the call.
    assert call.waiting_for == Dial(DUTY_PHONE, caller_id=HOTLINE_NUMBER, timeout=30, step="handover-ended")


@pytest.mark.parametrize("at", [MONDAY_EVENING, SATURDAY_NOON], ids=["monday-evening", "saturday"])
def test_outside_opening_hours_the_handover_is_neither_offered_nor_accepted(hotline, at):
    call = FlowCall(hotline, with_handover(at))
    assert not call.hears("call handlers now")
    call.presses("0")
    assert call.hears(prompts.NOT_AN_OPTION) and call.hears(prompts.MAIN_MENU)
    assert not any(isinstance(verb, Dial) for verb in call.reply.verbs)


def test_without_a_handover_configured_0_is_not_an_option(call):
    assert not call.hears(prompts.HANDOVER_OFFER)
    call.presses("0")
    assert call.hears(prompts.NOT_AN_OPTION)


@pytest.mark.parametrize("status", ["no-answer", "busy", "failed", "canceled"])
def test_when_no_handler_answers_the_caller_is_offered_a_report(hotline, status):
    call = FlowCall(hotline, with_handover(MONDAY_MORNING))
    call.presses("0")
    call.dial_ends(status)
    assert call.hears(prompts.HANDOVER_NO_ANSWER) and call.hears(prompts.MAIN_MENU)
    call.presses("1")
    assert call.hears("To stay anonymous, press 1")


def test_after_talking_to_a_handler_the_caller_can_still_make_a_report(hotline):
    call = FlowCall(hotline, with_handover(MONDAY_MORNING))
    call.presses("0")
    call.dial_ends("completed")
    assert call.hears(prompts.HANDOVER_ENDED)
    call.presses("1")
    assert call.hears("To stay anonymous, press 1")


# --- opening hours and settings ----------------------------------------------------------------

def test_opening_hours_are_local_time_and_follow_the_clocks_changing():
    hours = WEEKDAYS_NINE_TO_FIVE
    assert hours.is_open(datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc))  # GMT: 09:00 in London
    assert hours.is_open(datetime(2026, 7, 6, 8, 30, tzinfo=timezone.utc))  # BST: 09:30 in London
    assert not hours.is_open(datetime(2026, 1, 5, 8, 30, tzinfo=timezone.utc))
    assert hours.is_open(datetime(2026, 7, 6, 15, 59, tzinfo=timezone.utc))  # 16:59 BST
    assert not hours.is_open(datetime(2026, 7, 6, 16, 0, tzinfo=timezone.utc))  # 17:00 BST: closed
    assert not hours.is_open(SATURDAY_NOON)
    late = OpeningHours.parse("Mon-Thu 18:00-22:00; Sat 10:00-24:00")
    assert late.is_open(MONDAY_EVENING) and late.is_open(datetime(2026, 7, 11, 22, 59, tzinfo=timezone.utc))


@pytest.mark.parametrize("text, problem", [
    ("Mon-Fry 09:00-17:00", "'Fry' is not a day"),
    ("Fri-Mon 09:00-17:00", "days run backwards"),
    ("Mon 17:00-09:00", "end after it starts"),
    ("Mon 09:00-25:00", "not a time of day"),
    ("weekdays 9 till 5", "is not a shift like"),
    (" ; ", "no shifts"),
])
def test_opening_hours_that_do_not_make_sense_are_refused_with_the_reason(text, problem):
    with pytest.raises(ValueError, match=problem):
        OpeningHours.parse(text)


def test_the_settings_read_the_services_and_the_handover(settings_env):
    settings = Settings.from_env(dict(
        settings_env, HOTLINE_SUPPORT_SERVICES="Rape Crisis=0808 500 2222; Samaritans=116 123",
        HOTLINE_HANDOVER_NUMBER=DUTY_PHONE, HOTLINE_NUMBER=HOTLINE_NUMBER,
        HOTLINE_OPENING_HOURS="Mon-Fri 09:00-17:00; Sat 10:00-14:00", HOTLINE_HANDOVER_RING_SECONDS="25",
    ))
    assert settings.support_services == (("Rape Crisis", "0808 500 2222"), ("Samaritans", "116 123"))
    handover = settings.handover
    assert (handover.number, handover.caller_id, handover.ring_seconds) == (DUTY_PHONE, HOTLINE_NUMBER, 25)
    assert handover.hours.timezone == "Europe/London" and len(handover.hours.shifts) == 6
    assert DUTY_PHONE not in repr(settings) and DUTY_PHONE not in repr(handover)  # staff's own phone
    options = FlowOptions.from_settings(settings)
    assert options.support_services == settings.support_services and options.handover == handover


def test_by_default_the_help_list_is_the_built_in_one_and_there_is_no_handover(settings_env):
    settings = Settings.from_env(settings_env)
    assert settings.handover is None
    assert FlowOptions.from_settings(settings).support_services == prompts.SUPPORT_SERVICES


def test_a_half_configured_handover_or_a_bad_service_stops_the_start_naming_each_problem(settings_env):
    with pytest.raises(ConfigError) as error:
        Settings.from_env(dict(
            settings_env, HOTLINE_HANDOVER_NUMBER="01632 960999", HOTLINE_OPENING_HOURS="Mon-Fri 9-5",
            HOTLINE_TIMEZONE="Europe/Londres", HOTLINE_SUPPORT_SERVICES="Samaritans=116 123; Call us on 0800",
        ))
    message = str(error.value)
    assert "HOTLINE_HANDOVER_NUMBER must be a phone number in international form" in message
    assert "HOTLINE_TIMEZONE: 'Europe/Londres' is not a time zone" in message
    assert "HOTLINE_NUMBER not set" in message
    assert "HOTLINE_SUPPORT_SERVICES: 'Call us on 0800' is not 'Name=number'" in message
