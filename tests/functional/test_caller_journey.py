"""Whole calls, as a caller lives them, through Twilio's webhooks and the embedded worker."""
from __future__ import annotations

import re

from sqlalchemy import select

from ivr import prompts
from console.keys import open_item
from storage.models import Case, Recording, SealedItem
from storage.references import pin_for
from tests.support.audio import phone_wav
from tests.support.processes import wait_until


def _spoken_digits(call, label: str) -> str:
    """Digits read out in groups ("1, 2, 3, 4. 5, 6, 7, 8." or "1, 2, 3. 4, 5, 6."), as a caller writes them down."""
    said = " ".join(call.heard)
    match = re.search(label + r" ((?:\d, )*\d\.(?: (?:\d, )*\d\.)*)", said)
    return re.sub(r"\D", "", match.group(1))


def _anonymous_report(twilio, category: str):
    """A caller who reports anonymously, writes down the reference and PIN read to them, and hangs up."""
    caller = twilio.dial()
    for key in "11" + category:
        caller.presses(key)
    caller.says(phone_wav(1.0))
    caller.presses("1")
    reference, pin = _spoken_digits(caller, "reference is"), _spoken_digits(caller, "PIN is")
    caller.hangs_up()
    return caller, reference, pin


def _stored_and_deleted(fake_twilio, hotline, sid: str) -> bool:
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording).where(Recording.recording_sid == sid))
        return recording is not None and recording.audio_item_id is not None and recording.deleted_at_twilio


def test_an_anonymous_caller_makes_a_report_and_is_given_a_reference_and_pin(twilio, fake_twilio, running_app, private_key):
    hotline = running_app.extensions["hotline"]
    wav = phone_wav(3.0)
    caller = twilio.dial(from_="+447700900111")
    assert caller.hears("call 999")
    caller.presses("1")
    assert caller.hears("To stay anonymous, press 1")
    caller.presses("1")
    assert caller.hears("What is your report about?")
    caller.presses("1")
    assert caller.hears("After the tone")
    caller.says(wav, then="#")
    assert caller.hears(prompts.AFTER_RECORDING_MENU)
    caller.presses("1")
    assert caller.hears("Your case reference is")
    reference, pin = _spoken_digits(caller, "reference is"), _spoken_digits(caller, "PIN is")
    assert len(reference) == 8 and len(pin) == 6
    caller.presses("1")
    assert caller.hears("Your case reference is")
    caller.hangs_up()

    sid = caller.recording_sids[0]
    assert wait_until(lambda: _stored_and_deleted(fake_twilio, hotline, sid), timeout=20)
    assert sid not in fake_twilio.recordings
    with hotline.db.session() as session:
        case = session.scalar(select(Case))
        assert (case.reference, case.anonymous, case.category) == (reference, True, "bribery-corruption")
        assert pin == pin_for(hotline.settings.secret_key, reference)
        item = session.scalar(select(SealedItem).where(SealedItem.kind == "recording"))
        assert open_item(session, private_key, hotline.blobs, item, periods=hotline.periods) == caller.recordings[0].wav


def test_a_caller_adds_to_their_report_by_calling_back(twilio, fake_twilio, running_app):
    hotline = running_app.extensions["hotline"]
    first, reference, pin = _anonymous_report(twilio, category="3")

    again = twilio.dial()
    again.presses("2")
    assert again.hears(prompts.ENTER_REFERENCE)
    again.presses(reference)
    assert again.hears(prompts.ENTER_PIN)
    again.presses(pin)
    assert again.hears(prompts.UNLOCKED)
    again.says(phone_wav(1.5), then="#")
    again.presses("1")
    assert again.hears(prompts.ADDED_TO_CASE)
    assert again.is_over

    sids = first.recording_sids + again.recording_sids
    assert wait_until(lambda: all(_stored_and_deleted(fake_twilio, hotline, sid) for sid in sids), timeout=20)
    with hotline.db.session() as session:
        case_ids = set(session.scalars(select(Recording.case_id)))
        assert len(case_ids) == 1 and session.scalar(select(Case.reference)) == reference


def test_wrong_details_get_one_neutral_message_and_ten_failures_lock_the_reference(twilio, running_app):
    first, reference, pin = _anonymous_report(twilio, category="5")
    wrong_pin = str((int(pin) + 1) % 10**6).zfill(6)
    wrong_reference = reference[:-1] + str((int(reference[-1]) + 1) % 10)

    guesser = twilio.dial()
    guesser.presses("2")
    guesser.presses(wrong_reference); guesser.presses(pin)
    message_for_wrong_reference = guesser.heard_since_last_action[:1]
    guesser.presses(reference); guesser.presses(wrong_pin)
    assert guesser.heard_since_last_action[:1] == message_for_wrong_reference == [prompts.UNLOCK_FAILED]
    guesser.presses(reference); guesser.presses(wrong_pin)
    assert guesser.hears(prompts.UNLOCK_GIVE_UP) and guesser.is_over

    for _ in range(3):  # two failures on this reference so far; three more calls of three
        another = twilio.dial()
        another.presses("2")
        for _ in range(3):
            another.presses(reference); another.presses(wrong_pin)
        assert another.is_over
    # Eleven failures on this reference: even the right PIN is refused, in the same words, until a
    # handler or operator unlocks it (console/cli.py `unlock`, or the case page).
    owner = twilio.dial()
    owner.presses("2")
    owner.presses(reference); owner.presses(pin)
    assert owner.hears(prompts.UNLOCK_FAILED) and not owner.hears(prompts.UNLOCKED)

    from storage.cases import unlock_reference

    hotline = running_app.extensions["hotline"]
    with hotline.db.session() as session:
        assert unlock_reference(session, reference) == 12
        session.commit()
    owner.presses(reference); owner.presses(pin)
    assert owner.hears(prompts.UNLOCKED)


def test_recording_again_deletes_the_first_take_everywhere(twilio, fake_twilio, running_app):
    hotline = running_app.extensions["hotline"]
    caller = twilio.dial()
    for key in "112":
        caller.presses(key)
    caller.says(phone_wav(1.0, frequency=300))
    first_sid = caller.recording_sids[0]
    caller.presses("2")
    assert caller.hears(prompts.TAKE_DISCARDED)
    caller.says(phone_wav(1.0, frequency=500))
    caller.presses("1")
    caller.hangs_up()
    second_sid = caller.recording_sids[1]
    assert wait_until(lambda: _stored_and_deleted(fake_twilio, hotline, second_sid), timeout=20)
    assert wait_until(lambda: first_sid not in fake_twilio.recordings, timeout=20)
    with hotline.db.session() as session:
        first = session.scalar(select(Recording).where(Recording.recording_sid == first_sid))
        assert first.decision == "discard" and first.audio_item_id is None
        assert len(session.scalars(select(SealedItem).where(SealedItem.kind == "recording")).all()) == 1


def test_hanging_up_during_the_report_keeps_it(twilio, fake_twilio, running_app):
    hotline = running_app.extensions["hotline"]
    caller = twilio.dial()
    for key in "114":
        caller.presses(key)
    caller.says(phone_wav(2.0), then="hangup")
    assert caller.is_over
    sid = caller.recording_sids[0]
    assert wait_until(lambda: _stored_and_deleted(fake_twilio, hotline, sid), timeout=20)


def test_callbacks_retried_and_out_of_order_store_the_recording_once(twilio, fake_twilio, running_app):
    hotline = running_app.extensions["hotline"]
    caller = twilio.dial(recording_callback_first=True)
    for key in "111":
        caller.presses(key)
    caller.says(phone_wav(1.0))
    caller.resend_last_recording_callback()
    caller.presses("1")
    caller.hangs_up()
    caller.resend_last_recording_callback()
    caller.resend_status_callback()
    sid = caller.recording_sids[0]
    assert wait_until(lambda: _stored_and_deleted(fake_twilio, hotline, sid), timeout=20)
    assert len(fake_twilio.requests("GET", sid)) == 1
    with hotline.db.session() as session:
        assert len(session.scalars(select(SealedItem)).all()) == 1


def test_a_caller_who_says_nothing_is_asked_again_and_an_absent_recording_is_noted(twilio, running_app):
    hotline = running_app.extensions["hotline"]
    caller = twilio.dial()
    for key in "111":
        caller.presses(key)
    caller.says_nothing()
    assert caller.hears(prompts.RECORD_NOTHING_HEARD)
    assert caller.waiting_for == "recording"
    with hotline.db.session() as session:
        recordings = session.scalars(select(Recording)).all()
        assert [(r.twilio_status, r.audio_item_id) for r in recordings] == [("absent", None)]


def test_no_input_anywhere_ends_the_call_politely(twilio):
    caller = twilio.dial()
    caller.waits()
    caller.waits()
    caller.waits()
    assert caller.hears(prompts.NO_INPUT_GOODBYE)
    assert caller.is_over


def test_every_twiml_verb_used_is_on_the_allow_list(twilio):
    caller = twilio.dial()
    for key in "12":
        caller.presses(key)
    caller.presses("2")
    caller.presses("07700900222#")
    caller.presses("1")
    caller.presses("3")
    caller.says(phone_wav(1.0))
    caller.presses("3")
    caller.says(phone_wav(1.0))
    caller.presses("1")
    caller.presses("1")
    allowed = {"Response", "Response/Say", "Response/Pause", "Response/Gather", "Response/Gather/Say",
               "Response/Gather/Pause", "Response/Record", "Response/Redirect", "Response/Hangup"}
    assert set(caller.used_verbs()) <= allowed
