"""A handler writes questions to the caller on the case page, sees them queue in order with their state,
withdraws one not yet heard, and finds each answer beside its question (its take plays in the timeline)."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from storage import questions
from storage.models import AuditAction, AuditEntry, Case, Question, QuestionState, Recording
from tests.console.cases.helpers import Take, form_post, messages, texts_of_class

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # nothing here differs on PostgreSQL
SAVED = "Question saved. The caller will hear it the next time they ring with their reference and PIN."


@pytest.fixture
def reference(cases, console, settings) -> str:
    """A case the line opened, so it has its question key."""
    reference = cases.case(anonymous=True)
    with console.db.session() as session:
        questions.ensure_question_key(session, settings.pin_key, session.scalar(select(Case).where(Case.reference == reference)))
        session.commit()
    return reference


def ask(person, reference: str, text: str):
    page = f"/cases/{reference}"
    return form_post(person, page, f"{page}/questions", {"text": text}, follow_redirects=True)


def stored(console, reference: str) -> list[Question]:
    with console.db.session() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        rows = session.scalars(select(Question).where(Question.case_id == case.id).order_by(Question.position)).all()
        session.expunge_all()
        return rows


def audit(console, action: AuditAction) -> list[dict]:
    with console.db.session() as session:
        return [json.loads(entry.detail) for entry in
                session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))]


def test_questions_queue_in_order_on_the_case_page_and_are_audited_without_their_words(handler, console, reference):
    assert messages(ask(handler, reference, "What colour was the car?")) == [SAVED]
    response = ask(handler, reference, "  Which station was he from?  ")

    html = response.get_data(as_text=True)
    assert texts_of_class(html, "question-text") == ["What colour was the car?", "Which station was he from?"]
    assert texts_of_class(html, "question-state") == ["Waiting for the caller's next call"] * 2
    assert html.count('class="question-withdraw"') == 2
    first, second = stored(console, reference)
    assert (first.position, second.position) == (1, 2) and first.state is QuestionState.QUEUED
    assert audit(console, AuditAction.QUESTION_WRITTEN) == [{"question": first.id, "position": 1},
                                                           {"question": second.id, "position": 2}]


@SQLITE_ONLY
def test_an_empty_or_too_long_question_is_refused_with_a_message_and_nothing_is_stored(handler, console, reference):
    for text, message in (("   ", "Write the question to ask the caller."),
                          ("x" * 501, "A question is at most 500 characters: the caller hears it, they cannot read it.")):
        response = ask(handler, reference, text)
        assert response.status_code == 200 and messages(response) == [message]
    assert stored(console, reference) == [] and audit(console, AuditAction.QUESTION_WRITTEN) == []


@SQLITE_ONLY
def test_a_queued_question_can_be_withdrawn_but_not_one_the_caller_has_heard(handler, console, reference):
    ask(handler, reference, "First?")
    ask(handler, reference, "Second?")
    first, second = stored(console, reference)
    with console.db.session() as session:  # the caller rang back and heard the first
        session.get(Question, first.id).state = QuestionState.HEARD
        session.commit()
    page = f"/cases/{reference}"

    refused = form_post(handler, page, f"{page}/questions/{first.id}/withdraw", {}, follow_redirects=True)
    assert messages(refused) == ["Only a question the caller has not heard yet can be withdrawn."]
    done = form_post(handler, page, f"{page}/questions/{second.id}/withdraw", {}, follow_redirects=True)
    assert messages(done) == ["Question withdrawn: the caller will not hear it."]
    assert texts_of_class(done.get_data(as_text=True), "question-state") == ["Heard, not yet answered", "Withdrawn"]
    assert [q.state for q in stored(console, reference)] == [QuestionState.HEARD, QuestionState.WITHDRAWN]
    assert audit(console, AuditAction.QUESTION_WITHDRAWN) == [{"question": second.id, "position": 2}]

    unknown = form_post(handler, page, f"{page}/questions/987654/withdraw", {}, follow_redirects=True)
    assert messages(unknown) == ["There is no such question on this case."]


@SQLITE_ONLY
def test_a_question_of_another_case_cannot_be_withdrawn_through_this_one(handler, console, cases, settings, reference):
    ask(handler, reference, "Mine?")
    [mine] = stored(console, reference)
    other = cases.case(anonymous=False)
    page = f"/cases/{other}"
    response = form_post(handler, page, f"{page}/questions/{mine.id}/withdraw", {}, follow_redirects=True)
    assert messages(response) == ["There is no such question on this case."]
    assert stored(console, reference)[0].state is QuestionState.QUEUED


@SQLITE_ONLY
def test_the_answer_is_shown_beside_its_question_and_plays_in_the_timeline(handler, console, cases, reference):
    ask(handler, reference, "What colour was the car?")
    [question] = stored(console, reference)
    answer = cases.add_take(reference, Take("it was red"))
    with console.db.session() as session:
        session.get(Recording, answer).question_id = question.id
        row = session.get(Question, question.id)
        row.state = QuestionState.ANSWERED
        row.answered_at = row.created_at
        session.commit()

    html = handler.get(f"/cases/{reference}").get_data(as_text=True)
    assert texts_of_class(html, "question-state") == ["Answered"]
    assert f'href="#take-{answer}">take 2 in the timeline</a>' in html
    assert f'id="take-{answer}"' in html  # its player, in the timeline
    assert 'class="question-withdraw"' not in html


@SQLITE_ONLY
def test_a_case_from_before_questions_says_how_to_give_it_a_key(handler, console, cases):
    older = cases.case(anonymous=False)  # opened straight in the database: no question key
    response = ask(handler, older, "Anything?")
    assert response.status_code == 200
    [message] = messages(response)
    assert "flask --app app question-keys" in message
    assert stored(console, older) == []
