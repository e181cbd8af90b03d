"""A handler's question, as stored: sealed twice, never in the clear, and opened by the line only for a
call that gave the case's reference and PIN and is still going."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect as sql_inspect, select, text

from console.keys import open_item
from console.questions.services import withdraw_question, write_question
from console.cases.services import CaseActionRefused
from storage import questions
from storage.cases import open_case
from storage.crypto import SealError
from storage.migrate import upgrade
from storage.models import AuditAction, AuditEntry, Call, CallStatus, PendingAuditEntry, QuestionState, Role, User, utcnow

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # nothing here differs on PostgreSQL
QUESTION = "What colour was the car the officer got out of?"


@pytest.fixture
def session(hotline):
    with hotline.db.session() as session:
        yield session


@pytest.fixture
def handler(session) -> User:
    user = User(username="hana", display_name="Hana Handler", role=Role.HANDLER)
    session.add(user)
    session.commit()
    return user


def new_case(session, hotline, anonymous=True):
    case = open_case(session, anonymous=anonymous)
    questions.ensure_question_key(session, hotline.settings.pin_key, case)
    session.commit()
    return case


def unlocked_call(session, case) -> Call:
    call = Call(call_sid=f"CA{case.reference}{'0' * 24}", case_id=case.id, purpose="add", unlocked_at=utcnow())
    session.add(call)
    session.commit()
    return call


def test_a_question_is_sealed_for_the_line_and_for_handlers_and_never_stored_in_the_clear(session, hotline, handler, private_key):
    case = new_case(session, hotline)
    question = write_question(session, hotline.sealer, case, handler, QUESTION)
    session.commit()

    assert question.state is QuestionState.QUEUED and question.position == 1
    # Handlers open their copy with the hotline key, through the question that points at it; like every
    # item of the case, it is sealed under the case's period key (seal v3, storage/keystore.py).
    assert question.item.key_period is not None
    assert open_item(session, private_key, hotline.blobs, question.item, questions.question_owner(question.id),
                     periods=hotline.periods) == QUESTION.encode()
    # The line opens its copy only for a call that unlocked the case.
    assert questions.open_for_call(session, hotline.settings.pin_key, unlocked_call(session, case), question) == QUESTION
    # Not a word of it in any table.
    needle = b"colour was the car"
    for table in sql_inspect(session.get_bind()).get_table_names():
        for row in session.execute(text(f'SELECT * FROM "{table}"')):
            for value in row:
                raw = value if isinstance(value, (bytes, memoryview)) else str(value).encode()
                assert needle not in bytes(raw), table
    assert session.scalar(select(AuditEntry.action).order_by(AuditEntry.id.desc())) == "question-written"


@SQLITE_ONLY
def test_the_line_cannot_open_a_question_for_a_call_that_did_not_unlock_the_case_or_has_ended(session, hotline, handler):
    case, other = new_case(session, hotline), new_case(session, hotline)
    question = write_question(session, hotline.sealer, case, handler, QUESTION)
    session.commit()
    pin_key = hotline.settings.pin_key

    not_unlocked = Call(call_sid="CA" + "1" * 32, case_id=case.id, purpose="add")
    other_case = unlocked_call(session, other)
    ended = unlocked_call(session, case)
    ended.ended_at, ended.status = utcnow(), CallStatus.COMPLETED
    session.add(not_unlocked)
    session.commit()
    for call in (not_unlocked, other_case, ended):
        with pytest.raises(questions.QuestionUnavailable):
            questions.open_for_call(session, pin_key, call, question)
        assert questions.next_for_call(session, call) is None


@SQLITE_ONLY
def test_a_copy_of_the_database_without_the_pin_key_opens_no_question(session, hotline, handler):
    case = new_case(session, hotline)
    question = write_question(session, hotline.sealer, case, handler, QUESTION)
    call = unlocked_call(session, case)
    with pytest.raises(SealError):
        questions.open_for_call(session, "another pin key of the right length, 48 chars...", call, question)


@SQLITE_ONLY
def test_the_line_s_copy_is_bound_to_its_question(session, hotline, handler):
    case = new_case(session, hotline)
    first = write_question(session, hotline.sealer, case, handler, QUESTION)
    second = write_question(session, hotline.sealer, case, handler, "Which station was he from?")
    first.line_sealed, second.line_sealed = second.line_sealed, first.line_sealed  # swapped in the database
    session.commit()
    with pytest.raises(SealError):
        questions.open_for_call(session, hotline.settings.pin_key, unlocked_call(session, case), first)


def test_questions_are_put_in_order_skipping_withdrawn_ones_and_heard_once_per_call(session, hotline, handler):
    case = new_case(session, hotline, anonymous=True)
    first, second, third = (write_question(session, hotline.sealer, case, handler, q) for q in ("One?", "Two?", "Three?"))
    withdraw_question(session, case, handler, second.id)
    session.commit()
    call = unlocked_call(session, case)

    assert questions.next_for_call(session, call) == first
    questions.put_to_caller(session, call, first)
    questions.put_to_caller(session, call, first)  # a retried webhook
    assert first.state is QuestionState.HEARD
    assert first.heard_at == first.heard_at.replace(minute=0, second=0, microsecond=0)  # anonymous: the hour only
    assert questions.next_for_call(session, call) == third
    assert len(session.scalars(select(PendingAuditEntry)).all()) == 1  # heard once: audited when the hour is over
    session.commit()

    # A heard question can no longer be withdrawn: the caller knows it.
    with pytest.raises(CaseActionRefused):
        withdraw_question(session, case, handler, first.id)


@SQLITE_ONLY
def test_a_question_cannot_be_written_for_a_case_without_a_question_key_until_backfilled(session, hotline, handler):
    case = open_case(session, anonymous=False)  # as cases opened before questions
    session.commit()
    with pytest.raises(CaseActionRefused, match="question-keys"):
        write_question(session, hotline.sealer, case, handler, QUESTION)
    session.rollback()

    done = questions.backfill_keys(session, hotline.settings.pin_key)
    session.commit()
    assert done.made == 1 and questions.backfill_keys(session, hotline.settings.pin_key).made == 0
    assert write_question(session, hotline.sealer, case, handler, QUESTION).position == 1


@SQLITE_ONLY
def test_the_question_keys_command_backfills_older_cases(app, session, hotline):
    older = [open_case(session, anonymous=True) for _ in range(2)]
    session.commit()
    result = app.test_cli_runner().invoke(args=["question-keys"])
    assert result.exit_code == 0, result.output
    assert "question keys made for 2 cases" in result.output
    assert all(questions.question_key(session, case) is not None for case in older)


def test_migration_0006_goes_down_and_up_again(settings):
    from storage.migrate import alembic_config
    from alembic import command

    command.downgrade(alembic_config(settings.database_url), "0005")
    upgrade(settings.database_url)


def test_what_the_line_audits_of_an_anonymous_case_waits_for_its_hour_to_end_and_a_named_case_s_does_not(
        session, hotline, handler, monkeypatch):
    import storage.audit

    anonymous, named = new_case(session, hotline, anonymous=True), new_case(session, hotline, anonymous=False)
    for case in (anonymous, named):
        question = write_question(session, hotline.sealer, case, handler, QUESTION)
        questions.put_to_caller(session, unlocked_call(session, case), question)
    session.commit()

    def heard() -> list[AuditEntry]:
        return session.scalars(select(AuditEntry).where(AuditEntry.action == "question-heard").order_by(AuditEntry.id)).all()

    # The named case's is in the chain at once; the anonymous case's would place the call among the
    # console's entries (precise times), so it waits, timed to the hour.
    assert [entry.case_reference for entry in heard()] == [named.reference]
    [pending] = session.scalars(select(PendingAuditEntry)).all()
    assert pending.case_reference == anonymous.reference and pending.created_at.minute == 0

    storage.audit.record(session, AuditAction.INBOX_VIEWED, actor=handler)  # still this hour: it waits
    assert len(heard()) == 1
    later = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1, minutes=5)
    monkeypatch.setattr(storage.audit, "utcnow", lambda: later)
    storage.audit.record(session, AuditAction.INBOX_VIEWED, actor=handler)  # the first append after the hour
    session.commit()
    chained = heard()[-1]
    assert (chained.case_reference, chained.actor, chained.created_at) == (anonymous.reference, "line", pending.created_at)
    assert session.scalars(select(PendingAuditEntry)).all() == []
    following = session.get(AuditEntry, chained.id + 1)
    assert following.action == AuditAction.INBOX_VIEWED and following.created_at == later
    from console.audit.services import verify_chain
    assert verify_chain(session).ok
