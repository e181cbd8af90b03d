"""Retention as supervisors see it: what is due for deletion and when, legal holds, and the past months
whose keys a few cases keep (which console/reseal.py can re-seal under this month's key).

The schedule itself is storage/retention.py (the workers purge by it); this adds the labels a page needs
and the two supervisor actions on holds. Placing or lifting a hold writes a case event whose reason is
sealed to the case's period key, as a note is, and an audit entry naming only the event's item: the
reason's words are never in the clear. The caller commits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from console.audit.services import record
from console.cases.services import REASON_MAX_CHARS, CaseActionRefused, moment_label
from settings import RetentionPolicy
from storage.cases import Sealer, event_owner
from storage.crypto import period_of
from storage.keystore import KeyStore
from storage.models import AuditAction, Case, CaseEvent, CaseEventKind, User, utcnow
from storage.retention import Retention, RetentionState, cases_by_period, schedule


@dataclass(frozen=True)
class RetentionRow:
    reference: str
    status_label: str
    settled_label: str
    due_label: str
    state: RetentionState


@dataclass(frozen=True)
class HeldOpenPeriod:
    """A past month whose key is still kept because some of its cases are (storage/retention.py
    period_in_use): re-sealing them under this month's key lets it go now (console/reseal.py)."""

    period: str
    cases: int  # live cases still on it
    latest_due_label: str  # when the last of them is due, as far as is known
    key_present: bool  # False: its key is gone, its cases' items open no more: nothing to re-seal


@dataclass(frozen=True)
class RetentionPage:
    rows: list[RetentionRow]
    policy: RetentionPolicy
    due_now: int
    held: int
    periods: list[HeldOpenPeriod] = field(default_factory=list)
    reseal_target: str | None = None  # this month, the period a re-seal moves cases under


def retention_page(session: Session, policy: RetentionPolicy, now: datetime | None = None,
                   store: KeyStore | None = None) -> RetentionPage:
    """Every settled case with its due date, soonest first, held cases last; and, with a key store, the
    past months whose keys some of those (or unsettled) cases keep. Decrypts nothing."""
    now = now or utcnow()
    settled = schedule(session, policy, now)
    rows = []
    for row in settled:
        due = "on legal hold" if row.due_at is None else moment_label(row.due_at)
        if row.state is RetentionState.DUE:
            due += " (at the next purge)"
        rows.append(RetentionRow(row.reference, row.status.label, moment_label(row.settled_at), due, row.state))
    periods = periods_held_open(session, store, settled, now) if store is not None else []
    return RetentionPage(rows, policy, sum(r.state is RetentionState.DUE for r in rows),
                         sum(r.state is RetentionState.HELD for r in rows), periods,
                         period_of(now) if store is not None else None)


def periods_held_open(session: Session, store: KeyStore, settled: list[Retention],
                      now: datetime) -> list[HeldOpenPeriod]:
    """Each month that has ended and still has cases on its key, oldest first: how many, and when the last
    of them is due (unknown while one is still being worked or is on legal hold)."""
    this_month = period_of(now)
    keys = {row.period for row in store.periods()}
    due = {row.case_id: row for row in settled}
    found = []
    for period, case_ids in cases_by_period(session).items():
        if period >= this_month:
            continue
        dates = [due[case_id].due_at for case_id in case_ids if case_id in due and due[case_id].due_at is not None]
        held = sum(1 for case_id in case_ids if case_id in due and due[case_id].due_at is None)
        working = sum(1 for case_id in case_ids if case_id not in due)
        if held or working:
            unknown = ", ".join(part for part in (f"{working} still being worked" if working else "",
                                                  f"{held} on legal hold" if held else "") if part)
            label = f"not known yet ({unknown})"
        else:
            label = moment_label(max(dates))
        found.append(HeldOpenPeriod(period, len(case_ids), label, period in keys))
    return found


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
