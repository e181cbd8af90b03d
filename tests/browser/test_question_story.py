"""A handler asks the caller a question, in headless Chromium; the caller rings back with their reference
and PIN, hears it and answers; the answer appears on the case, beside the question, and the case is new
in the inbox again. The calls are simulated over real HTTP with Twilio's signatures (simulator/); the
line's worker fetches and seals the answer as it does any take (no speech model here: transcripts are
not the story)."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import select

from storage.models import Case, Question, QuestionState, Recording
from storage.references import pin_for
from tests.browser.support.pages import element, fill, wait_for
from tests.support.audio import phone_wav
from tests.support.processes import wait_until

pytestmark = pytest.mark.slow

QUESTION = "Which station did the officer say he was from?"


@pytest.fixture
def line_app(settings):
    """The line with its embedded worker, transcription off."""
    from app import create_app

    app = create_app(settings.with_overrides(worker_mode="inprocess", transcription=False), start_worker=True)
    yield app
    app.extensions["hotline"].dispatcher.stop()
    app.extensions["hotline"].db.dispose()


def _stored(hotline, reference: str) -> list[Recording]:
    with hotline.db.session() as session:
        return session.scalars(select(Recording).join(Case).where(
            Case.reference == reference, Recording.audio_item_id.is_not(None))).all()


def _questions_section(driver) -> str:
    return element(driver, "#questions").text


def test_a_handler_asks_the_caller_a_question_and_the_answer_arrives_on_the_case(people, at_console, twilio, line_app, settings):
    hotline = line_app.extensions["hotline"]

    # An anonymous caller reports, writes down the reference and PIN they are read, and hangs up.
    caller = twilio.dial()
    for key in "111":
        caller.presses(key)
    caller.says(phone_wav(2.0), then="#")
    caller.presses("1")
    caller.hangs_up()
    assert wait_until(lambda: len(_stored(hotline, _reference(hotline))) == 1, timeout=30)
    reference = _reference(hotline)
    pin = pin_for(settings.pin_key, reference)

    # Hana opens the case and asks a question; it waits for the caller's next call.
    hana = at_console(people.handler("hana"))
    hana.signs_in()
    case = hana.opens_case(reference)
    fill(element(hana.driver, "#question-text"), QUESTION)
    element(hana.driver, "#ask-question").click()
    wait_for(hana.driver, "the question on the case", lambda d: QUESTION in _questions_section(d))
    assert "Waiting for the caller's next call" in _questions_section(hana.driver)

    # The caller rings back with reference and PIN: a handler has a question; they hear it, then answer.
    back = twilio.dial()
    for keys in ("2", reference, pin):
        back.presses(keys)
    assert back.hears("A call handler has a question for you.") and back.hears(QUESTION)
    back.presses("2")
    back.says(phone_wav(3.0), then="#")
    back.presses("1")
    assert back.hears("Your answer has been added to your report.")
    back.hangs_up()
    assert wait_until(lambda: len(_stored(hotline, reference)) == 2, timeout=30), "the answer was never stored"
    with hotline.db.session() as session:
        [question] = session.scalars(select(Question)).all()
        assert question.state is QuestionState.ANSWERED
        answer_id = session.scalar(select(Recording.id).where(Recording.question_id == question.id))

    # The case is new to Hana again, and the answer is beside the question, playable in the timeline.
    hana.visits("/inbox")
    row = element(hana.driver, f"#inbox tr.case-row[data-reference='{reference}']")
    assert "is-new" in row.get_attribute("class").split()
    case = hana.opens_case(reference)
    section = _questions_section(hana.driver)
    assert "Answered" in section and "take 2 in the timeline" in section
    element(hana.driver, "#questions .question-answer a").click()
    player = case.take(2)
    assert player.recording_id == answer_id
    assert hana.driver.find_elements(By.CSS_SELECTOR, f"#take-{answer_id} audio")


def _reference(hotline) -> str | None:
    with hotline.db.session() as session:
        return session.scalar(select(Case.reference))
