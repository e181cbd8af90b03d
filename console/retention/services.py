"""Retention as supervisors see it: what is due for deletion and when, and legal holds.

The schedule itself is storage/retention.py (the workers purge by it); this adds the labels a page needs
and the two supervisor actions. Placing or lifting a hold writes a case event whose reason is sealed to the
case's period key, as a note is, and an audit entry naming only the event's item: the reason's words are
never in the clear. The caller commits.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from console.audit.services import record
from console.cases.services import REASON_MAX_CHARS, CaseActionRefused, moment_label
from settings import RetentionPolicy
from storage.cases import Sealer, event_owner
from storage.models import AuditAction, Case, CaseEvent, CaseEventKind, User, utcnow
from storage.retention import RetentionState, schedule


@dataclass(frozen=True)
class RetentionRow:
    reference: str
    status_label: str
    settled_label: str
    due_label: str
    state: RetentionState


@dataclass(frozen=True)
class RetentionPage:
    rows: list[RetentionRow]
    policy: RetentionPolicy
    due_now: int
    held: int


def retention_page(session: Session, policy: RetentionPolicy, now: datetime | None = None) -> RetentionPage:
    """Every settled case with its due date, soonest first, held cases last. Decrypts nothing."""
    rows = []
    for row in schedule(session, policy, now):
        due = "on legal hold" if row.due_at is None else moment_label(row.due_at)
        if row.state is RetentionState.DUE:
            due += " (at the next purge)"
        rows.append(RetentionRow(row.reference, row.status.label, moment_label(row.settled_at), due, row.state))
    return RetentionPage(rows, policy, sum(r.state is RetentionState.DUE for r in rows),
                         sum(r.state is RetentionState.HELD for r in rows))


def _hold_event(session: Session, sealer: Sealer, case: Case, actor: User, on: bool, reason: str) -> CaseEvent:
    if not 1 <= len(reason) <= REASON_MAX_CHARS:
        raise CaseActionRefused(f"Give a reason, of at most {REASON_MAX_CHARS:,} characters.")
    event = CaseEvent(case_id=case.id, kind=CaseEventKind.LEGAL_HOLD, actor_id=actor.id,
                      old_value="off" if on else "on", new_value="on" if on else "off")
    session.add(event)
    session.flush()  # the event's id first: the reason's seal names it
    event.item_id = sealer.seal_item(session, case, "hold-reason", reason.encode("utf-8"), owner=event_owner(event.id)).id
    return event


def place_hold(session: Session, sealer: Sealer, case: Case, actor: User, reason: str) -> CaseEvent:
    """Keep the case, whatever its age, until a supervisor lifts the hold."""
    if case.legal_hold_since is not None:
        raise CaseActionRefused("The case is already on legal hold.")
    event = _hold_event(session, sealer, case, actor, True, reason)
    case.legal_hold_since = utcnow()
    record(session, AuditAction.LEGAL_HOLD_PLACED, actor=actor, case_reference=case.reference,
           detail={"reason_item": event.item_id})
    session.flush()
    return event


def lift_hold(session: Session, sealer: Sealer, case: Case, actor: User, reason: str) -> CaseEvent:
    """Retention runs again; an overdue case is kept HOTLINE_RETAIN_AFTER_HOLD_DAYS more (storage/retention.py)."""
    if case.legal_hold_since is None:
        raise CaseActionRefused("The case is not on legal hold.")
    event = _hold_event(session, sealer, case, actor, False, reason)
    case.legal_hold_since, case.hold_lifted_at = None, utcnow()
    record(session, AuditAction.LEGAL_HOLD_LIFTED, actor=actor, case_reference=case.reference,
           detail={"reason_item": event.item_id})
    session.flush()
    return event
