"""A handler's question, on the phone: a caller who rings back with their reference and PIN hears it
(slowly, with a key to hear it again), records an answer onto the case, and hears the next one. Whole
calls through the webhooks, signed as Twilio signs them (simulator/)."""
from __future__ import annotations

import io
import wave

import pytest
from sqlalchemy import select

from console.questions.services import withdraw_question, write_question
from ivr import prompts
from simulator.call import CallSimulator
from storage import questions
from storage.cases import open_case
from storage.models import AuditEntry, Call, Case, PendingAuditEntry, Question, QuestionState, Recording, Role, User
from storage.references import pin_for
from tests.support.audio import phone_wav

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the call flow is the same on both
QUESTION = "What colour was the car? Was it parked outside the station at 9.30pm?"


@pytest.fixture
def twilio(app, settings, fake_twilio):
    return CallSimulator.for_flask_app(
        app, public_base_url=settings.public_base_url, account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token, fake_twilio=fake_twilio,
    )


class CaseWithQuestions:
    """A case a caller made earlier (its reference and PIN written down), and a handler to ask them things."""

    def __init__(self, hotline):
        self.hotline = hotline
        with hotline.db.session() as session:
            case = open_case(session, anonymous=True)
            questions.ensure_question_key(session, hotline.settings.pin_key, case)
            handler = User(username="hana", display_name="Hana Handler", role=Role.HANDLER)
            session.add(handler)
            session.commit()
            self.case_id, self.reference, self.handler_id = case.id, case.reference, handler.id
            self.pin = pin_for(hotline.settings.pin_key, case.reference, case.pin_length)

    def ask(self, text: str) -> int:
        with self.hotline.db.session() as session:
            question = write_question(session, self.hotline.sealer, session.get(Case, self.case_id),
                                      session.get(User, self.handler_id), text)
            session.commit()
            return question.id

    def withdraw(self, question_id: int) -> None:
        with self.hotline.db.session() as session:
            withdraw_question(session, session.get(Case, self.case_id),
                              session.get(User, self.handler_id), question_id)
            session.commit()

    def question(self, question_id: int) -> Question:
        with self.hotline.db.session() as session:
            question = session.get(Question, question_id)
            session.expunge(question)
            return question

    def answers(self, question_id: int) -> list[Recording]:
        with self.hotline.db.session() as session:
            return session.scalars(select(Recording).where(Recording.question_id == question_id)
                                   .order_by(Recording.position)).all()

    def audit(self) -> list[str]:
        """The trail's actions, then those the line holds back until the hour is over (an anonymous case)."""
        with self.hotline.db.session() as session:
            chained = [entry.action.value for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
            held = session.scalars(select(PendingAuditEntry).order_by(PendingAuditEntry.created_at, PendingAuditEntry.id)).all()
            return chained + [entry.action.value for entry in held]

    def rings_back(self, twilio, pin: str | None = None):
        caller = twilio.dial()
        caller.presses("2")
        caller.presses(self.reference)
        caller.presses(pin or self.pin)
        return caller


@pytest.fixture
def case(hotline):
    return CaseWithQuestions(hotline)


@SQLITE_ONLY
def test_a_caller_who_rings_back_hears_the_question_slowly_again_on_request_and_answers_it(case, twilio):
    question_id = case.ask(QUESTION)

    caller = case.rings_back(twilio)
    assert caller.hears(prompts.UNLOCKED) and caller.hears(prompts.QUESTION_WAITING)
    # A sentence at a time, a pause after each; "9.30pm" stays whole.
    assert "What colour was the car?" in caller.heard and "Was it parked outside the station at 9.30pm?" in caller.heard
    assert caller.hears(prompts.QUESTION_MENU)
    assert case.question(question_id).state is QuestionState.HEARD

    caller.presses("1")
    assert caller.hears("What colour was the car?")
    caller.presses("2")
    assert caller.hears(prompts.QUESTION_ANSWER_INSTRUCTIONS)
    caller.says(phone_wav(2.0), then="#")
    assert caller.hears(prompts.QUESTION_AFTER_ANSWER_MENU)
    caller.presses("1")
    assert caller.hears(prompts.QUESTION_ANSWER_SAVED) and caller.hears(prompts.QUESTION_AFTER_QUESTIONS_MENU)
    caller.hangs_up()

    question = case.question(question_id)
    assert question.state is QuestionState.ANSWERED and question.answered_at.minute == 0  # anonymous: the hour
    [answer] = case.answers(question_id)
    assert answer.case_id == case.case_id and answer.decision == "keep"
    assert case.audit().count("question-heard") == 1 and case.audit()[-1] == "question-answered"


@SQLITE_ONLY
def test_several_questions_are_asked_in_order_and_a_withdrawn_one_is_not(case, twilio):
    first, withdrawn, last = case.ask("First question?"), case.ask("Withdrawn question?"), case.ask("Last question?")
    case.withdraw(withdrawn)

    caller = case.rings_back(twilio)
    assert caller.hears("First question?")
    caller.presses("2")
    caller.says(phone_wav(1.0), then="#")
    caller.presses("1")
    assert caller.hears(prompts.QUESTION_ANOTHER) and caller.hears("Last question?")
    assert "Withdrawn question?" not in caller.heard
    caller.presses("2")
    caller.says(phone_wav(1.0), then="#")
    for _ in range(3):
        caller.waits()  # silence, asked twice more, keeps the answer
    assert caller.hears(prompts.QUESTION_ANSWER_SAVED)
    caller.presses("1")  # then adds something else to the report, as any call-back can
    assert caller.hears(prompts.RECORD_MORE_INSTRUCTIONS)
    caller.says(phone_wav(1.0), then="#")
    caller.hangs_up()

    assert [case.question(q).state for q in (first, withdrawn, last)] == [
        QuestionState.ANSWERED, QuestionState.WITHDRAWN, QuestionState.ANSWERED]
    assert len(case.answers(first)) == 1 and len(case.answers(last)) == 1


@SQLITE_ONLY
def test_an_answer_recorded_again_replaces_the_first(case, twilio):
    question_id = case.ask(QUESTION)
    caller = case.rings_back(twilio)
    caller.presses("2")
    caller.says(phone_wav(1.0), then="#")
    caller.presses("2")
    assert caller.hears(prompts.QUESTION_ANSWER_DISCARDED) and caller.hears(prompts.QUESTION_ANSWER_INSTRUCTIONS)
    caller.says(phone_wav(1.5), then="#")
    caller.presses("1")
    caller.hangs_up()

    first, second = case.answers(question_id)
    assert (first.decision, second.decision) == ("discard", "keep")
    assert case.question(question_id).state is QuestionState.ANSWERED


@SQLITE_ONLY
def test_a_question_left_unanswered_is_asked_again_on_the_next_call(case, twilio):
    question_id = case.ask(QUESTION)
    caller = case.rings_back(twilio)
    for _ in range(3):
        caller.waits()
    assert caller.hears(prompts.QUESTION_LEFT_FOR_LATER)
    caller.hangs_up()
    assert case.question(question_id).state is QuestionState.HEARD

    again = case.rings_back(twilio)
    assert again.hears(prompts.QUESTION_WAITING) and again.hears("What colour was the car?")
    again.hangs_up()
    assert case.audit().count("question-heard") == 2  # once per call that put it


@SQLITE_ONLY
def test_a_wrong_pin_hears_no_question_and_a_case_with_none_goes_straight_to_recording(case, twilio):
    case.ask(QUESTION)
    wrong = "000000" if case.pin != "000000" else "111111"
    caller = case.rings_back(twilio, pin=wrong)
    assert caller.hears(prompts.UNLOCK_FAILED)
    assert not any("colour" in said for said in caller.heard)
    caller.hangs_up()

    with case.hotline.db.session() as session:
        other = open_case(session, anonymous=False)
        session.commit()
        reference, pin = other.reference, pin_for(case.hotline.settings.pin_key, other.reference, other.pin_length)
    caller = twilio.dial()
    for keys in ("2", reference, pin):
        caller.presses(keys)
    assert caller.hears(prompts.RECORD_MORE_INSTRUCTIONS) and not caller.hears(prompts.QUESTION_WAITING)
    caller.hangs_up()
    with case.hotline.db.session() as session:
        assert questions.question_key(session, session.get(Case, other.id)) is not None  # made at the unlock


@SQLITE_ONLY
def test_a_new_report_gets_its_question_key_when_it_is_opened(twilio, hotline):
    caller = twilio.dial()
    caller.presses("1")
    caller.presses("1")
    caller.hangs_up()
    with hotline.db.session() as session:
        call = session.scalar(select(Call).where(Call.call_sid == caller.call_sid))
        assert questions.question_key(session, call.case) is not None


@pytest.fixture
def espeak_app(settings):
    from app import create_app

    app = create_app(settings.with_overrides(question_voice="espeak"))
    yield app
    app.extensions["hotline"].dispatcher.stop()
    app.extensions["hotline"].db.dispose()


@SQLITE_ONLY
def test_with_the_offline_voice_twilio_gets_audio_bound_to_the_call_and_never_the_text(espeak_app, settings, fake_twilio):
    twilio = CallSimulator.for_flask_app(espeak_app, public_base_url=settings.public_base_url,
                                         account_sid=settings.twilio_account_sid,
                                         auth_token=settings.twilio_auth_token, fake_twilio=fake_twilio)
    case = CaseWithQuestions(espeak_app.extensions["hotline"])
    case.ask(QUESTION)
    caller = case.rings_back(twilio)
    assert caller.hears(prompts.QUESTION_WAITING)
    assert caller.requests() and not any(b"colour" in exchange.response.body for exchange in caller.requests())
    [url] = [played for played in caller.played if "/ivr/question-audio/" in played]
    path = url.removeprefix(settings.public_base_url)

    browser = espeak_app.test_client()  # Twilio fetches <Play> audio by GET, unsigned
    response = browser.get(path)
    assert response.status_code == 200 and response.mimetype == "audio/wav"
    assert response.headers["Cache-Control"] == "no-store"
    with wave.open(io.BytesIO(response.data)) as audio:
        assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (8000, 1, 2)
        assert audio.getnframes() / 8000 > 2.0  # the whole question, spoken slowly

    forged = path[:-1] + ("0" if path[-1] != "0" else "1")
    far_future = "/ivr/question-audio/1/2/" + "9" * 30 + "/" + "0" * 32
    for refused in (forged, far_future, "/ivr/question-audio/x/y/z/w", path.rsplit("/", 1)[0]):
        assert browser.get(refused).status_code == 404
    caller.hangs_up()
    assert browser.get(path).status_code == 404  # the call has ended: refused, though the token is fresh
