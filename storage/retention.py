"""Retention: when a case is due for deletion, legal holds, the purge, and destroying spent period keys.

A case is kept while it is worked. Once its outcome is settled, the clock starts at the status change that
settled it (settings.RetentionPolicy): no further action, or closed after it, 90 days; referred, or closed
after it, 365 days (a case closed from any other status counts as referred: the longer period). New and
in-review cases are never due; reopening stops the clock. A legal hold (placed and lifted by supervisors
in the console, with a sealed reason) suspends it: a held case is never purged, and once the hold is lifted
the case is kept at least after_hold_days more, however overdue it was.

The purge (run by the workers on a schedule, jobs/retention.py) deletes a due case with every row and blob
of it and appends one tombstone to the audit trail: the reference and "case-purged", no content. The trail's
earlier entries about the case stay: they hold no content, and the hash chain an insider cannot edit
unnoticed must not be cut (README, Retention). Then each period key whose period is over and that no
case or item uses any more is destroyed in the key store (storage/keystore.py), which is what makes the
deletion reach backups of the database. A case uses the period of the month it was opened in, or the later
one its items were re-sealed under (Case.key_period: console/reseal.py, so a month's key can go before its
longest-kept case does).

Everything here takes a session and leaves committing to the caller; nothing here opens a seal.
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from settings import RetentionPolicy
from storage.audit import record
from storage.blobs import BlobStore
from storage.crypto import period_of
from storage.keystore import KeyStore
from storage.models import (
    AuditAction,
    Call,
    Case,
    CaseEvent,
    CaseEventKind,
    CaseStatus,
    CaseView,
    Job,
    JobState,
    PendingAuditEntry,
    Question,
    QuestionKey,
    Recording,
    Referral,
    ReferenceFailureHour,
    ReferenceLock,
    SealedItem,
    TranscriptVersion,
    utcnow,
)

log = logging.getLogger("hotline.retention")

SETTLED = (CaseStatus.NO_FURTHER_ACTION, CaseStatus.REFERRED, CaseStatus.CLOSED)
# A period's key is destroyed only this long after its month ended: a case opened in the month's last
# minutes may still be committing, and a job may still seal its take (the key store's cache is per process).
PERIOD_KEY_GRACE = timedelta(days=7)


class RetentionState(enum.StrEnum):
    KEPT = "kept"  # due at a date still to come
    DUE = "due"  # the next purge deletes it
    HELD = "held"  # a legal hold: not due while it lasts


@dataclass(frozen=True)
class Retention:
    """One settled case's place in the schedule. Plain metadata, as the inbox shows: no content."""

    case_id: int
    reference: str
    status: CaseStatus
    settled_at: datetime  # when it entered the status that started the clock
    due_at: datetime | None  # None while held
    state: RetentionState


def _days_for(status: CaseStatus, closed_from: str | None, policy: RetentionPolicy) -> int:
    outcome = status
    if status is CaseStatus.CLOSED:
        outcome = CaseStatus.NO_FURTHER_ACTION if closed_from == CaseStatus.NO_FURTHER_ACTION.value else CaseStatus.REFERRED
    return policy.no_further_action_days if outcome is CaseStatus.NO_FURTHER_ACTION else policy.referred_days


def schedule(session: Session, policy: RetentionPolicy, now: datetime | None = None,
             case_ids: list[int] | None = None) -> list[Retention]:
    """Every settled case (or the named ones) with when it is due, soonest first, held cases last. Two
    queries whatever the number of cases: the settled cases, and their status changes."""
    now = now or utcnow()
    query = select(Case.id, Case.reference, Case.status, Case.updated_at, Case.legal_hold_since,
                   Case.hold_lifted_at).where(Case.status.in_(SETTLED))
    if case_ids is not None:
        query = query.where(Case.id.in_(case_ids))
    cases = session.execute(query).all()
    if not cases:
        return []
    # The latest status change of each case: when and from what it entered its status.
    latest: dict[int, tuple[datetime, str | None]] = {}
    events = select(CaseEvent.case_id, CaseEvent.created_at, CaseEvent.old_value).where(
        CaseEvent.kind == CaseEventKind.STATUS, CaseEvent.case_id.in_([row.id for row in cases])
    ).order_by(CaseEvent.created_at, CaseEvent.id)
    for case_id, at, old in session.execute(events):
        latest[case_id] = (at, old)
    rows = []
    for row in cases:
        settled_at, closed_from = latest.get(row.id, (row.updated_at, None))
        if row.legal_hold_since is not None:
            rows.append(Retention(row.id, row.reference, row.status, settled_at, None, RetentionState.HELD))
            continue
        due = settled_at + timedelta(days=_days_for(row.status, closed_from, policy))
        if row.hold_lifted_at is not None:
            due = max(due, row.hold_lifted_at + timedelta(days=policy.after_hold_days))
        rows.append(Retention(row.id, row.reference, row.status, settled_at, due,
                              RetentionState.DUE if due <= now else RetentionState.KEPT))
    far = datetime.max.replace(tzinfo=timezone.utc)
    rows.sort(key=lambda r: (r.state is RetentionState.HELD, r.due_at or far, r.reference))
    return rows


def due_cases(session: Session, policy: RetentionPolicy, now: datetime | None = None) -> list[Retention]:
    return [row for row in schedule(session, policy, now) if row.state is RetentionState.DUE]


class PurgeRefused(Exception):
    """The case is not to be purged now (no longer due, held, or its jobs still running)."""


def purge_case(session: Session, blobs: BlobStore, case_id: int, policy: RetentionPolicy,
               now: datetime | None = None) -> str:
    """Delete one due case: its blobs, sealed items, takes, calls, jobs, events, corrections, views,
    questions, question key, referrals and failed-PIN counts, then the case; append its tombstone. Returns the reference. Re-checks under the
    case's row lock (PostgreSQL) that it is still due, so a hold placed meanwhile wins. The caller commits."""
    case = session.scalar(select(Case).where(Case.id == case_id).with_for_update())
    if case is None:
        raise PurgeRefused("no such case (purged already?)")
    state = schedule(session, policy, now, [case_id])
    if not state or state[0].state is not RetentionState.DUE:
        raise PurgeRefused("not due")
    reference = case.reference
    recording_ids = list(session.scalars(select(Recording.id).where(Recording.case_id == case_id)))
    call_ids = set(session.scalars(select(Call.id).where(Call.case_id == case_id)))
    call_ids |= {c for c in session.scalars(select(Recording.call_id).where(Recording.case_id == case_id)) if c}
    jobs = or_(Job.recording_id.in_(recording_ids), Job.call_id.in_(call_ids))
    if session.scalar(select(func.count(Job.id)).where(jobs, Job.state.in_((JobState.QUEUED, JobState.RUNNING)))):
        # A job still at work on it (e.g. Twilio's record of a call): the next purge tries again.
        raise PurgeRefused("its jobs are still running")
    blob_keys = list(session.scalars(select(SealedItem.blob_key).where(SealedItem.case_id == case_id)))
    # Questions to the caller: unlink the takes that answer them and the calls putting them, then the
    # questions (the line's copy is in the row; the handlers' copy is a sealed item, deleted below), the
    # case's question key, and the referrals sent (who and when, the package's hash: no content).
    question_ids = list(session.scalars(select(Question.id).where(Question.case_id == case_id)))
    if question_ids:
        session.execute(update(Recording).where(Recording.question_id.in_(question_ids)).values(question_id=None))
        session.execute(update(Call).where(Call.question_id.in_(question_ids)).values(question_id=None))
    session.execute(delete(Question).where(Question.case_id == case_id))
    session.execute(delete(QuestionKey).where(QuestionKey.case_id == case_id))
    session.execute(delete(Referral).where(Referral.case_id == case_id))
    session.execute(delete(CaseView).where(CaseView.case_id == case_id))
    session.execute(delete(CaseEvent).where(CaseEvent.case_id == case_id))
    session.execute(delete(TranscriptVersion).where(TranscriptVersion.recording_id.in_(recording_ids)))
    session.execute(delete(Job).where(jobs))
    session.execute(delete(Recording).where(Recording.case_id == case_id))
    # Calls go too: if Twilio still held a record of one, the sweep now finds a call we do not know and
    # deletes it there (jobs/sweep.py).
    session.execute(delete(Call).where(Call.id.in_(call_ids)))
    # In the database blob store these deletes commit with the rest. The folder store unlinks at once: if
    # the transaction then fails, the rows stay with their bytes gone, and the next purge deletes the rows.
    for key in blob_keys:
        blobs.delete(session, key)
    session.execute(delete(SealedItem).where(SealedItem.case_id == case_id))
    session.execute(delete(ReferenceLock).where(ReferenceLock.reference == reference))
    session.execute(delete(ReferenceFailureHour).where(ReferenceFailureHour.reference == reference))
    session.expunge(case)
    session.execute(delete(Case).where(Case.id == case_id))
    # The tombstone; appending it first chains the line's held-back entries whose hour is over, this
    # case's among them (storage/audit.py). Those of the case still held back (its hour not yet over) go
    # with the case: chained after its tombstone they would tell, to the minute, that its caller was on
    # the line just before the purge.
    record(session, AuditAction.CASE_PURGED, actor_label="system", case_reference=reference)
    session.execute(delete(PendingAuditEntry).where(PendingAuditEntry.case_reference == reference))
    session.flush()
    return reference


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """The instants a period (a calendar month, UTC) starts and ends."""
    year, month = int(period[:4]), int(period[5:7])
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end



def on_period(period: str):
    """SQL: the cases whose items are sealed under the period's key (storage/cases.py case_period): those
    re-sealed under it (Case.key_period), and those opened in its month and never re-sealed."""
    start, end = period_bounds(period)
    return or_(Case.key_period == period,
               and_(Case.key_period.is_(None), Case.created_at >= start, Case.created_at < end))


def period_in_use(session: Session, period: str) -> bool:
    """Whether a case, or a sealed item, of the database still uses the period's key. Two indexed lookups
    of one row each."""
    if session.scalar(select(Case.id).where(on_period(period)).limit(1)) is not None:
        return True
    return session.scalar(select(SealedItem.id).where(SealedItem.key_period == period).limit(1)) is not None


def spent_periods(session: Session, periods: list[str], now: datetime | None = None) -> list[str]:
    """Of these periods (the key store's), those whose month ended over PERIOD_KEY_GRACE ago and that no
    case, and no sealed item, of the database uses any more: their keys can go. A case re-sealed under a
    later period (console/reseal.py) no longer uses the month it was opened in."""
    now = now or utcnow()
    return [period for period in periods
            if period_bounds(period)[1] + PERIOD_KEY_GRACE <= now and not period_in_use(session, period)]


def destroy_spent_keys(session: Session, store: KeyStore, periods: list[str], now: datetime | None = None,
                       **who) -> list[str]:
    """Destroys the key of each of these periods that is spent (spent_periods above), and audits each
    destruction after it (`who`: record's actor or actor_label). Returns the periods whose keys this call
    destroyed; one another process destroyed a moment earlier is left to that process's audit entry.

    Ends the session's transaction, and commits each entry itself: the key lives in another database, so
    its entry can only follow what has already happened there. Whoever destroys keys then VACUUMs the key
    store (storage/compaction.py vacuum_key_store)."""
    spent = spent_periods(session, periods, now)
    session.rollback()  # the read ends before the destruction: nothing here holds the database meanwhile
    destroyed = []
    for period in spent:
        if store.destroy(period):
            record(session, AuditAction.PERIOD_KEY_DESTROYED, detail={"period": period}, **who)
            session.commit()
            destroyed.append(period)
    return destroyed


def cases_by_period(session: Session) -> dict[str, list[int]]:
    """Every case's id under the period whose key its items are sealed under, oldest period first. One
    query (of three short columns a case): for the supervisors' page and `keys status`, not the line."""
    found: dict[str, list[int]] = {}
    for case_id, key_period, created_at in session.execute(select(Case.id, Case.key_period, Case.created_at)):
        found.setdefault(key_period or period_of(created_at), []).append(case_id)
    return dict(sorted(found.items()))
