"""The call flow on its own: plain Python, driven step by step, with the database-backed desk."""
from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from ivr import prompts
from ivr.desk import SqlCallDesk
from ivr.events import CallEvent, RecordingEvent
from ivr.flow import CallFlow, FlowOptions
from ivr.reply import Gather, Hangup, Record, Redirect
from storage.models import Call, Case, Recording, SealedItem
from storage.references import CaseReference, pin_for


class FlowCall:
    """One call, stepped through the flow the way Twilio would follow the replies."""

    def __init__(self, hotline, caller_number: str | None = "+447700900321"):
        self.hotline = hotline
        self.call_sid = "CA" + secrets.token_hex(16)
        self.caller_number = caller_number
        self.reply = self._send("voice", None)

    def _send(self, step: str, digits: str | None, attempt: int = 1, take: str | None = None, recording=None):
        with self.hotline.db.session() as session:
            desk = SqlCallDesk(session, self.hotline.sealer, self.hotline.settings.secret_key)
            event = CallEvent(self.call_sid, digits, attempt, self.caller_number, recording, take=take)
            reply = CallFlow(desk, FlowOptions(max_recording_seconds=120)).handle(step, event)
            session.commit()
        return reply

    @property
    def waiting_for(self):
        return next(v for v in self.reply.verbs if isinstance(v, (Gather, Record)))

    def presses(self, digits: str):
        gather = self.waiting_for
        assert isinstance(gather, Gather)
        self.reply = self._send(gather.step, digits, gather.attempt, gather.take)
        return self.reply

    def waits(self):
        redirect = next(v for v in self.reply.verbs if isinstance(v, Redirect))
        self.reply = self._send(redirect.step, None, redirect.attempt, redirect.take)
        return self.reply

    def records(self, recording_sid: str | None = None, digits: str = "#"):
        record = self.waiting_for
        assert isinstance(record, Record)
        recording_sid = recording_sid or "RE" + secrets.token_hex(16)
        event = RecordingEvent(recording_sid, None, 12, None)
        self.reply = self._send(record.step, digits, record.attempt, recording=event)
        return recording_sid

    def hears(self, text: str) -> bool:
        return text.lower() in self.reply.spoken().lower()


@pytest.fixture
def call(hotline):
    return FlowCall(hotline)


def test_welcome_says_what_the_line_is_and_to_call_999(call):
    assert call.hears("immediate danger, hang up now and call 999")
    assert call.hears("recorded and encrypted")
    assert call.hears(prompts.MAIN_MENU)


def test_silence_at_the_welcome_is_asked_twice_more_then_a_polite_goodbye(call):
    call.waits()
    assert call.hears(prompts.NO_INPUT) and call.waiting_for.attempt == 2
    call.waits()
    assert call.waiting_for.attempt == 3
    call.waits()
    assert call.hears(prompts.NO_INPUT_GOODBYE)
    assert isinstance(call.reply.verbs[-1], Hangup)


def test_a_key_that_is_not_an_option_is_named_and_asked_again(call):
    call.presses("7")
    assert call.hears(prompts.NOT_AN_OPTION)
    assert call.hears(prompts.MAIN_MENU)


def test_silence_at_the_anonymity_choice_means_anonymous(call, hotline):
    call.presses("1")
    assert call.hears("To stay anonymous, press 1, or just wait")
    call.waits()
    assert call.hears(prompts.ANONYMOUS_CONFIRMED)
    assert call.hears("What is your report about?")
    with hotline.db.session() as session:
        case = session.scalar(select(Case))
        assert case.anonymous is True


def test_the_whole_anonymous_report_reads_back_reference_and_pin(call, hotline):
    call.presses("1")
    call.presses("1")
    call.presses("2")
    assert isinstance(call.waiting_for, Record)
    assert call.waiting_for.max_length == 120
    call.records()
    assert call.hears(prompts.AFTER_RECORDING_MENU)
    call.presses("1")
    with hotline.db.session() as session:
        case = session.scalar(select(Case))
    assert case.category == "sexual-misconduct"
    assert CaseReference.is_well_formed(case.reference)
    assert call.hears(", ".join(case.reference[:4]))
    pin = pin_for(hotline.settings.secret_key, case.reference)
    assert len(pin) == 6 and case.pin_length == 6
    assert call.hears(f"Your PIN is {pin[0]}, {pin[1]}, {pin[2]}. {pin[3]}, {pin[4]}, {pin[5]}.")  # two groups of three
    call.presses("1")  # hear them again
    assert call.hears(", ".join(case.reference[4:]))
    call.presses("9")
    assert call.hears(prompts.GOODBYE)


def test_recording_again_discards_the_earlier_take(call, hotline):
    call.presses("1"); call.presses("1"); call.presses("1")
    first = call.records()
    call.presses("2")
    assert call.hears(prompts.TAKE_DISCARDED)
    second = call.records()
    call.presses("1")
    with hotline.db.session() as session:
        decisions = {r.recording_sid: r.decision for r in session.scalars(select(Recording))}
    assert decisions == {first: "discard", second: "keep"}


def test_hanging_up_while_recording_keeps_the_take(call, hotline):
    call.presses("1"); call.presses("1"); call.presses("4")
    sid = call.records(digits="hangup")
    assert isinstance(call.reply.verbs[0], Hangup)
    with hotline.db.session() as session:
        assert session.scalar(select(Recording.decision).where(Recording.recording_sid == sid)) == "keep"


def test_saying_nothing_at_the_after_recording_menu_keeps_the_report(call):
    call.presses("1"); call.presses("1"); call.presses("5")
    call.records()
    call.waits(); call.waits(); call.waits()
    assert call.hears("Your case reference is")


def test_contact_details_from_the_calling_number_are_sealed(hotline):
    call = FlowCall(hotline, caller_number="+447700900321")
    call.presses("1")
    call.presses("2")
    assert call.hears("ending in 3, 2, 1")
    call.presses("1")
    assert call.hears(prompts.CONTACT_SAVED)
    with hotline.db.session() as session:
        case = session.scalar(select(Case))
        items = session.scalars(select(SealedItem)).all()
    assert case.anonymous is False
    assert [item.kind for item in items] == ["contact"]


def test_a_keyed_in_number_is_read_back_and_confirmed(hotline):
    call = FlowCall(hotline, caller_number="anonymous")  # withheld: no number to offer
    call.presses("1")
    call.presses("2")
    assert call.hears(prompts.CONTACT_ENTER_NUMBER)
    call.presses("12")
    assert call.hears(prompts.CONTACT_NUMBER_INVALID)
    call.presses("07700900654")
    assert call.hears("0, 7, 7. 0, 0, 9. 0, 0, 6. 5, 4.")
    call.presses("2")
    call.presses("07700900655")
    call.presses("1")
    assert call.hears(prompts.CONTACT_SAVED)
    with hotline.db.session() as session:
        notes = [item.note for item in session.scalars(select(SealedItem))]
    assert notes == ['{"confirmed": true}']  # the first, unconfirmed entry was replaced


def test_a_wrong_reference_or_pin_gets_one_neutral_message(call, hotline):
    call.presses("2")
    call.presses("12345678")
    assert call.hears(prompts.ENTER_PIN)
    call.presses("0000")
    assert call.hears(prompts.UNLOCK_FAILED)
    assert call.hears(prompts.ENTER_REFERENCE)


def test_three_failed_unlocks_in_one_call_end_it(call):
    call.presses("2")
    for _ in range(2):
        call.presses("12345678"); call.presses("0000")
        assert call.hears(prompts.UNLOCK_FAILED)
    call.presses("12345678"); call.presses("0000")
    assert call.hears(prompts.UNLOCK_GIVE_UP)
    assert isinstance(call.reply.verbs[-1], Hangup)


def test_adding_to_an_earlier_report_attaches_the_new_take_to_that_case(hotline):
    first = FlowCall(hotline)
    first.presses("1"); first.presses("1"); first.presses("3")
    first.records(); first.presses("1")
    with hotline.db.session() as session:
        case = session.scalar(select(Case))
    pin = pin_for(hotline.settings.secret_key, case.reference)

    again = FlowCall(hotline)
    again.presses("2")
    again.presses(case.reference)
    again.presses(pin)
    assert again.hears(prompts.UNLOCKED)
    sid = again.records()
    again.presses("1")
    assert again.hears(prompts.ADDED_TO_CASE)
    with hotline.db.session() as session:
        assert session.scalar(select(Recording.case_id).where(Recording.recording_sid == sid)) == case.id
        assert session.scalar(select(Call.purpose).where(Call.call_sid == again.call_sid)) == "add"


def test_the_pin_is_asked_for_as_six_keys_or_four_and_the_hash_key(call):
    call.presses("2")
    call.presses("12345678")
    gather = call.waiting_for
    assert (gather.step, gather.num_digits, gather.finish_on_key) == ("pin", 6, "#")
    assert call.hears(prompts.ENTER_PIN) and "4 digits, press the hash key" in prompts.ENTER_PIN


def test_a_case_from_before_six_digit_pins_is_read_and_unlocked_with_its_four_digit_pin(hotline):
    first = FlowCall(hotline)
    first.presses("1"); first.presses("1"); first.presses("3")
    first.records()
    with hotline.db.session() as session:
        case = session.scalar(select(Case))
        case.pin_length = 4  # as migration 0004 leaves the cases already there
        session.commit()
    first.presses("1")
    old_pin = pin_for(hotline.settings.secret_key, case.reference, 4)
    assert first.hears(f"Your PIN is {', '.join(old_pin)}.")

    again = FlowCall(hotline)
    again.presses("2")
    again.presses(case.reference)
    again.presses(pin_for(hotline.settings.secret_key, case.reference))  # the 6-digit derivation is not its PIN
    assert again.hears(prompts.UNLOCK_FAILED)
    again.presses(case.reference)
    again.presses(old_pin)
    assert again.hears(prompts.UNLOCKED)


def test_silence_instead_of_a_recording_asks_again_then_says_goodbye(call):
    call.presses("1"); call.presses("1"); call.presses("1")
    call.waits()
    assert call.hears(prompts.RECORD_NOTHING_HEARD)
    call.waits(); call.waits()
    assert call.hears(prompts.NO_INPUT_GOODBYE)


def test_nobody_is_turned_away_for_not_choosing_a_category(call, hotline):
    call.presses("1"); call.presses("1")
    call.waits(); call.waits(); call.waits()
    assert isinstance(call.waiting_for, Record)
    with hotline.db.session() as session:
        assert session.scalar(select(Case.category)) == "other"
