"""Appending to the hash-chained audit trail (console/audit/services.py verifies and shows it).

Here in the shared core, not in the console, because the workers write one kind of entry too: the
tombstone a purged case leaves (storage/retention.py). Appending opens nothing; every entry holds ids,
references and actions, never report content.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from hashlib import sha256
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.models import AuditAction, AuditEntry, AuditHead, User, utcnow

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
    """Append one entry. The caller commits, together with the access it records."""
    # Taking the head row's lock first makes concurrent appends (several console processes) queue here.
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    session.refresh(head)
    label = actor.username if actor is not None else (actor_label or "system")
    detail_text = json.dumps(detail or {}, sort_keys=True, separators=(",", ":"))
    created_at = utcnow()
    entry = AuditEntry(
        id=head.seq, created_at=created_at, actor_id=actor.id if actor is not None else None, actor=label,
        action=action, case_reference=case_reference, target_user_id=target_user_id, detail=detail_text,
        prev_hash=head.hash,
    )
    entry.hash = entry_hash(entry.id, created_at, entry.actor_id, label, action.value, case_reference,
                            target_user_id, detail_text, head.hash)
    head.hash = entry.hash
    session.add(entry)
    session.flush()
    return entry


