"""Appending to the hash-chained audit trail, from every side: the console records handlers' accesses,
the line records what a caller did with a handler's question (heard, answered), and the workers record the
tombstone a purged case leaves (storage/retention.py) and a destroyed period key. Verifying the chain, and
the head logger, stay in console/audit/services.py, which re-exports these. Appending opens nothing.

Each entry's hash is SHA-256 over its own fields and the previous entry's hash, so an edited, deleted or
reordered entry breaks the chain. Entries hold ids, references and actions, never report content.

What the line records about an anonymous case is held back (PendingAuditEntry) until its hour is over, and
timed to the hour: see record_after_the_hour.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from hashlib import sha256
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.models import AuditAction, AuditEntry, AuditHead, PendingAuditEntry, User, utcnow

GENESIS_HASH = "0" * 64


def entry_hash(seq: int, created_at: datetime, actor_id: int | None, actor: str, action: str,
               case_reference: str | None, target_user_id: int | None, detail: str, prev_hash: str) -> str:
    # In UTC whatever zone the database hands the time back in (PostgreSQL uses the session's TimeZone),
    # so the same instant always hashes the same.
    canonical = json.dumps(
        [seq, created_at.astimezone(timezone.utc).isoformat(timespec="microseconds"), actor_id, actor, action,
         case_reference, target_user_id, detail, prev_hash],
        separators=(",", ":"), ensure_ascii=True,
    )
    return sha256(canonical.encode()).hexdigest()


def record(
    session: Session,
    action: AuditAction,
    *,
    actor: User | None = None,
    actor_label: str | None = None,
    case_reference: str | None = None,
    target_user_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry (after any the line held back from an hour now over). The caller commits,
    together with the access it records."""
    # Taking the head row's lock first makes concurrent appends (several processes) queue here.
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    now = utcnow()
    _chain_pending(session, now)
    label = actor.username if actor is not None else (actor_label or "system")
    return _append(session, now, actor.id if actor is not None else None, label, action, case_reference,
                   target_user_id, _detail_text(detail))


def record_after_the_hour(session: Session, action: AuditAction, *, actor_label: str, case_reference: str,
                          detail: dict[str, Any], hour: datetime) -> None:
    """The line's entry about an anonymous case: timed to the hour, and chained only once that hour is
    over, by the first append after it (record above). Appended at once, its place in the chain, between
    the console's entries with their precise times, would tell the minute of the call."""
    session.add(PendingAuditEntry(created_at=hour, actor=actor_label, action=action, case_reference=case_reference,
                                  detail=_detail_text(detail)))
    session.flush()


def _chain_pending(session: Session, now: datetime) -> int:
    this_hour = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    due = session.scalars(select(PendingAuditEntry).where(PendingAuditEntry.created_at < this_hour)
                          .order_by(PendingAuditEntry.created_at, PendingAuditEntry.id)).all()
    for pending in due:
        _append(session, pending.created_at, None, pending.actor, pending.action, pending.case_reference, None,
                pending.detail)
        session.delete(pending)
    return len(due)


def _detail_text(detail: dict[str, Any] | None) -> str:
    return json.dumps(detail or {}, sort_keys=True, separators=(",", ":"))


def _append(session: Session, created_at: datetime, actor_id: int | None, label: str, action: AuditAction,
            case_reference: str | None, target_user_id: int | None, detail_text: str) -> AuditEntry:
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    session.refresh(head)
    entry = AuditEntry(
        id=head.seq, created_at=created_at, actor_id=actor_id, actor=label, action=action,
        case_reference=case_reference, target_user_id=target_user_id, detail=detail_text, prev_hash=head.hash,
    )
    entry.hash = entry_hash(entry.id, created_at, actor_id, label, action.value, case_reference,
                            target_user_id, detail_text, head.hash)
    head.hash = entry.hash
    session.add(entry)
    session.flush()
    return entry
