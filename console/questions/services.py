"""Handlers' side of a question to the caller: write one (sealed twice, storage/questions.py), withdraw one
not yet heard, and list a case's questions with their answers. Each function takes the session; the view
commits, so the change and its audit entry land together."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from console.audit.services import record
from console.cases.services import CaseActionRefused, kept_takes, moment_label, received_label
from storage import questions
from storage.blobs import BlobMissing
from storage.cases import Sealer
from storage.crypto import SealError
from storage.models import AuditAction, Case, Question, QuestionState, Recording, User, random_id, utcnow

log = logging.getLogger("hotline.console.questions")

MAX_CHARS = questions.MAX_CHARS
STATE_LABELS = {QuestionState.QUEUED: "Waiting for the caller's next call", QuestionState.HEARD: "Heard, not yet answered",
                QuestionState.ANSWERED: "Answered", QuestionState.WITHDRAWN: "Withdrawn"}


class NoQuestionKey(CaseActionRefused):
    pass


def write_question(session: Session, sealer: Sealer, case: Case, actor: User, text: str) -> Question:
    """Sealed to the case's question key (for the line) and, as a sealed item, to the case's period key,
    which the hotline key opens (for handlers; sealer carries the key store)."""
    if not 1 <= len(text) <= MAX_CHARS:
        raise CaseActionRefused(f"A question is 1 to {MAX_CHARS} characters.")
    key = questions.question_key(session, case)
    if key is None:
        raise NoQuestionKey("This case was opened before questions could be asked: the line will be able to ask one "
                            "after the caller next rings back, or once an operator runs "
                            "`flask --app app question-keys`.")
    question_id = random_id()  # known before sealing: both seals name it
    item = sealer.seal_item(session, case, questions.KIND, text.encode("utf-8"), owner=questions.question_owner(question_id))
    question = Question(id=question_id, case_id=case.id, position=questions.next_position(session, case.id),
                        state=QuestionState.QUEUED, author_id=actor.id, item_id=item.id,
                        line_sealed=questions.seal_for_line(key, case, question_id, text))
    session.add(question)
    session.flush()
    record(session, AuditAction.QUESTION_WRITTEN, actor=actor, case_reference=case.reference,
           detail={"question": question.id, "position": question.position})
    return question


def withdraw_question(session: Session, case: Case, actor: User, question_id: int) -> Question:
    """Only a question the caller has not heard: the line may be putting it at this moment, so the change
    is conditional on its state (whichever commits first wins)."""
    question = session.get(Question, question_id)
    if question is None or question.case_id != case.id:
        raise CaseActionRefused("There is no such question on this case.")
    withdrawn = session.execute(
        update(Question).where(Question.id == question.id, Question.state == QuestionState.QUEUED)
        .values(state=QuestionState.WITHDRAWN, withdrawn_at=utcnow(), withdrawn_by_id=actor.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(question)
    if not withdrawn:
        raise CaseActionRefused("Only a question the caller has not heard yet can be withdrawn.")
    record(session, AuditAction.QUESTION_WITHDRAWN, actor=actor, case_reference=case.reference,
           detail={"question": question.id, "position": question.position})
    return question


@dataclass(frozen=True)
class QuestionView:
    id: int
    position: int
    state: QuestionState
    text: str | None  # opened for this page only
    unreadable: bool
    author: str | None
    written_label: str
    heard_label: str | None
    answered_label: str | None
    answer_take: int | None  # the answer's take number in the timeline (its player is there)
    answer_recording_id: int | None

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def withdrawable(self) -> bool:
        return self.state is QuestionState.QUEUED


def case_questions(session: Session, opener, case: Case) -> list[QuestionView]:
    rows = session.scalars(select(Question).where(Question.case_id == case.id).order_by(Question.position)).all()
    if not rows:
        return []
    takes = {recording.id: view for recording, view in kept_takes(session, case)}
    answers = {}  # each question's kept answer (a take in the timeline); the latest if there are more
    answered = session.execute(select(Recording.id, Recording.question_id).where(
        Recording.case_id == case.id, Recording.question_id.is_not(None), Recording.decision == "keep"))
    for recording_id, question_id in answered:
        if recording_id in takes and (question_id not in answers or takes[recording_id].number > answers[question_id].number):
            answers[question_id] = takes[recording_id]
    names = dict(session.execute(select(User.id, User.display_name)).all())
    views = []
    for question in rows:
        text, unreadable = _open(session, opener, question)
        answer = answers.get(question.id)
        views.append(QuestionView(
            id=question.id, position=question.position, state=question.state, text=text, unreadable=unreadable,
            author=names.get(question.author_id), written_label=moment_label(question.created_at),
            heard_label=received_label(question.heard_at, case.anonymous) if question.heard_at else None,
            answered_label=received_label(question.answered_at, case.anonymous) if question.answered_at else None,
            answer_take=answer.number if answer else None, answer_recording_id=answer.id if answer else None,
        ))
    return views


def _open(session: Session, opener, question: Question) -> tuple[str | None, bool]:
    try:
        return opener.open(session, question.item, questions.question_owner(question.id)).decode("utf-8"), False
    except (SealError, BlobMissing, UnicodeDecodeError) as error:
        log.warning("question %s did not open: %s", question.id, type(error).__name__)
        return None, True
