"""Retention as the charity lives it: a case settled with no further action goes after 90 days, a referred
one after a year; a legal hold keeps a case whatever its age; the purge leaves a tombstone and nothing else;
and once a month's cases are all gone, that month's key goes, so even an old backup of the database no
longer opens them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from console.keys import PeriodKeys, unseal
from jobs.retention import purge
from storage.cases import open_case
from storage.crypto import SealContext, SealError, period_of
from storage.models import (
    AuditAction, AuditEntry, BlobRow, Call, Case, CaseEvent, CaseStatus, Job, JobKind, JobState, Recording,
    ReferenceLock, SealedItem, utcnow,
)
from storage.retention import RetentionState, schedule
from tests.support.retention import a_worked_case

MARCH = datetime(2026, 3, 10, 14, tzinfo=timezone.utc)
APRIL = datetime(2026, 4, 2, 9, tzinfo=timezone.utc)


def months(hotline) -> set[str]:
    return {row.period for row in hotline.periods.periods()}


def test_the_line_has_this_month_s_and_next_month_s_keys_from_the_start(hotline):
    now = utcnow()
    following = (now.replace(day=1) + timedelta(days=32)).replace(day=1)
    assert months(hotline) == {period_of(now), period_of(following)}


def states(hotline) -> dict[str, RetentionState]:
    with hotline.db.session() as session:
        return {row.reference: row.state for row in schedule(session, hotline.settings.retention)}


def run_purge(hotline, now=None):
    return purge(hotline.db, hotline.blobs, hotline.periods, hotline.settings.retention, now)


def test_no_further_action_goes_after_90_days_and_a_referral_after_a_year(hotline):
    old_nfa = a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 91)
    young_nfa = a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 89)
    closed_after_nfa = a_worked_case(hotline, MARCH, CaseStatus.CLOSED, 91, closed_from=CaseStatus.NO_FURTHER_ACTION)
    referred = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 200)
    closed_after_referral = a_worked_case(hotline, MARCH, CaseStatus.CLOSED, 200, closed_from=CaseStatus.REFERRED)
    old_referral = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 366)

    assert states(hotline) == {
        old_nfa: RetentionState.DUE, closed_after_nfa: RetentionState.DUE, old_referral: RetentionState.DUE,
        young_nfa: RetentionState.KEPT, referred: RetentionState.KEPT, closed_after_referral: RetentionState.KEPT,
    }
    assert run_purge(hotline)["purged"] == 3
    with hotline.db.session() as session:
        left = set(session.scalars(select(Case.reference)))
    assert left == {young_nfa, referred, closed_after_referral}


def test_a_case_being_worked_is_never_due(hotline):
    with hotline.db.session() as session:
        new = open_case(session, anonymous=True)
        new.created_at = utcnow() - timedelta(days=3000)
        session.commit()
    in_review = a_worked_case(hotline, MARCH, CaseStatus.IN_REVIEW, 3000)
    assert states(hotline) == {}
    assert run_purge(hotline)["purged"] == 0
    with hotline.db.session() as session:
        assert session.scalar(select(func.count(Case.id))) == 2 and session.scalar(
            select(Case.id).where(Case.reference == in_review))


def test_a_purged_case_leaves_its_tombstone_and_nothing_else(hotline):
    kept = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    gone = a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 100)
    with hotline.db.session() as session:
        before = {table.__name__: session.scalar(select(func.count()).select_from(table))
                  for table in (Case, Call, Recording, SealedItem, BlobRow, Job, CaseEvent, ReferenceLock)}
    run_purge(hotline)
    with hotline.db.session() as session:
        after = {table.__name__: session.scalar(select(func.count()).select_from(table))
                 for table in (Case, Call, Recording, SealedItem, BlobRow, Job, CaseEvent, ReferenceLock)}
        # Exactly the one case's rows went: 1 case, call, take, job and lock; 2 items and blobs; 2 events.
        assert {name: before[name] - after[name] for name in before} == {
            "Case": 1, "Call": 1, "Recording": 1, "SealedItem": 2, "BlobRow": 2, "Job": 1, "CaseEvent": 2,
            "ReferenceLock": 1}
        assert session.scalar(select(Case.id).where(Case.reference == kept))
        tombstone = session.scalars(select(AuditEntry).where(AuditEntry.case_reference == gone)).all()
        assert [(entry.action, entry.actor, entry.detail) for entry in tombstone] == [
            (AuditAction.CASE_PURGED, "system", "{}")]
    from console.audit.services import verify_chain

    with hotline.db.session() as session:
        assert verify_chain(session).ok


def test_a_legal_hold_keeps_an_overdue_case_and_lifting_it_gives_30_days_more(hotline):
    reference = a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 400)
    with hotline.db.session() as session:
        session.scalar(select(Case).where(Case.reference == reference)).legal_hold_since = utcnow()
        session.commit()
    assert states(hotline) == {reference: RetentionState.HELD}
    assert run_purge(hotline)["purged"] == 0

    with hotline.db.session() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        case.legal_hold_since, case.hold_lifted_at = None, utcnow()
        session.commit()
        (row,) = schedule(session, hotline.settings.retention)
    assert row.state is RetentionState.KEPT
    assert timedelta(days=29) < row.due_at - utcnow() <= timedelta(days=30)
    assert run_purge(hotline)["purged"] == 0
    assert run_purge(hotline, now=utcnow() + timedelta(days=31))["purged"] == 1


def test_a_case_whose_jobs_still_run_waits_for_the_next_purge(hotline):
    reference = a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 100)
    with hotline.db.session() as session:
        call_id = session.scalar(select(Call.id).join(Case).where(Case.reference == reference))
        session.add(Job(kind=JobKind.DELETE_CALL, call_id=call_id, state=JobState.QUEUED))
        session.commit()
    assert run_purge(hotline) == {"skipped": 1}
    with hotline.db.session() as session:
        session.execute(Job.__table__.update().where(Job.call_id == call_id).values(state=JobState.DONE))
        session.commit()
    assert run_purge(hotline)["purged"] == 1


def test_a_month_s_key_goes_with_its_last_case_and_an_old_backup_no_longer_opens(hotline, private_key):
    march_first = a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 100)
    march_last = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 100)
    april = a_worked_case(hotline, APRIL, CaseStatus.NO_FURTHER_ACTION, 100)
    with hotline.db.session() as session:
        # What a backup of the database taken today holds: the sealed bytes and the rows that name them.
        backup = [(session.get(BlobRow, item.blob_key).data if hotline.settings.blob_store == "database"
                   else hotline.blobs.get(session, item.blob_key),
                   SealContext(item.case.reference, item.kind, item.blob_key, None), item.key_period)
                  for item in session.scalars(select(SealedItem))]
    assert sorted({period for _, _, period in backup}) == ["2026-03", "2026-04"]
    assert {"2026-03", "2026-04"} <= months(hotline)

    def backup_opens(period: str) -> list[bool]:
        keys = PeriodKeys(private_key, hotline.periods)
        opened = []
        for data, context, item_period in backup:
            if item_period == period:
                try:
                    unseal(private_key, data, context, keys)
                    opened.append(True)
                except SealError:
                    opened.append(False)
        return opened

    assert backup_opens("2026-03") == [True] * 4  # the hotline key opens it, through March's key

    run_purge(hotline)  # March's first case and April's (both due); March's referral stays
    assert "2026-03" in months(hotline) and "2026-04" not in months(hotline)  # April had one case: key gone
    assert backup_opens("2026-04") == [False, False]
    assert backup_opens("2026-03") == [True] * 4  # March's referral still needs it, so the purged one still opens

    with hotline.db.session() as session:
        session.execute(CaseEvent.__table__.update().where(
            CaseEvent.case_id == select(Case.id).where(Case.reference == march_last).scalar_subquery())
            .values(created_at=utcnow() - timedelta(days=400)))
        session.commit()
    assert run_purge(hotline) == {"purged": 1, "period keys destroyed": 1}
    assert not {"2026-03", "2026-04"} & months(hotline)
    assert backup_opens("2026-03") == [False] * 4
    with hotline.db.session() as session:
        destroyed = session.scalars(select(AuditEntry.detail).where(
            AuditEntry.action == AuditAction.PERIOD_KEY_DESTROYED)).all()
    assert sorted(destroyed) == ['{"period":"2026-03"}', '{"period":"2026-04"}']
    assert {march_first, april}  # (named for the story above)


def test_this_month_s_key_is_kept_even_with_no_case_left(hotline):
    reference = a_worked_case(hotline, utcnow(), CaseStatus.NO_FURTHER_ACTION, 100)
    assert run_purge(hotline) == {"purged": 1}
    assert period_of(utcnow()) in months(hotline)  # a call may be opening this month's next case right now
    assert reference


def test_a_purged_case_with_questions_and_a_referral_leaves_only_its_tombstone(hotline):
    """Issue 9's rows go with the case: its question (both copies), the take answering it and the call
    putting it, its question key, the referral sent, and the line's audit entries still held back."""
    from console.questions.services import write_question
    from storage import questions
    from storage.anonymity import coarse
    from storage.audit import record_after_the_hour
    from storage.cases import take_owner
    from storage.models import Force, PendingAuditEntry, Question, QuestionKey, Referral, Role, User

    reference = a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 100)
    with hotline.db.session() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        handler = User(username="hana", display_name="Hana Handler", role=Role.HANDLER)
        force = Force(name="Anyshire Police PSD")
        session.add_all([handler, force])
        session.flush()
        questions.ensure_question_key(session, hotline.settings.pin_key, case)
        question = write_question(session, hotline.sealer, case, handler, "Which station was it?")
        assert question.item.key_period == "2026-03"  # the handlers' copy: under March's period key
        call = session.scalar(select(Call).where(Call.case_id == case.id))
        call.unlocked_at = utcnow()
        questions.put_to_caller(session, call, question)
        answer = Recording(case_id=case.id, call_id=call.id, position=2, recording_sid=None, duration_seconds=3)
        session.add(answer)
        session.flush()
        answer.audio_item_id = hotline.sealer.seal_item(session, case, "recording", b"the answer",
                                                        owner=take_owner(answer.id)).id
        assert questions.answer_recorded(session, call, answer) is question
        session.add(Referral(case_id=case.id, force_id=force.id, actor_id=handler.id, sha256="0" * 64, size=1))
        this_hour = coarse(utcnow())
        for hour in (this_hour - timedelta(hours=1), this_hour):  # one due for the chain, one still held back
            record_after_the_hour(session, AuditAction.QUESTION_HEARD, actor_label="line", case_reference=reference,
                                  detail={"question": question.id}, hour=hour)
        session.commit()
        last_before = session.scalar(select(func.max(AuditEntry.id)))

    assert run_purge(hotline)["purged"] == 1
    with hotline.db.session() as session:
        for table in (Case, Call, Recording, SealedItem, BlobRow, Job, CaseEvent, ReferenceLock, Question,
                      QuestionKey, Referral, PendingAuditEntry):
            assert session.scalar(select(func.count()).select_from(table)) == 0, table.__name__
        assert session.scalar(select(func.count(Force.id))) == 1  # the force is not the case's
        appended = session.execute(select(AuditEntry.action, AuditEntry.case_reference).where(
            AuditEntry.id > last_before).order_by(AuditEntry.id)).all()
        # The held-back entry whose hour is over is chained first; the one of this hour goes with the case.
        # March had this case only: its key goes too, and with it the question's copy in any backup.
        assert [tuple(row) for row in appended] == [(AuditAction.QUESTION_HEARD, reference),
                                                    (AuditAction.CASE_PURGED, reference),
                                                    (AuditAction.PERIOD_KEY_DESTROYED, None)]
    assert "2026-03" not in months(hotline)
    from console.audit.services import verify_chain

    with hotline.db.session() as session:
        assert verify_chain(session).ok
