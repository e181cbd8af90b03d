"""Reading the audit trail for supervisors: filtered, newest first, a page at a time.

Paging is by sequence number ("entries older than N"), not by offset: every look at the trail adds an
entry of its own, and an offset would shift the pages under the reader each time.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from storage.models import AuditAction, AuditEntry, User


@dataclass(frozen=True)
class TrailQuery:
    action: AuditAction | None = None
    case_reference: str | None = None
    user_id: int | None = None  # entries by this account, or about it (an admin's change to it)
    before: int | None = None  # only entries older than this sequence number

    @property
    def is_filtered(self) -> bool:
        return self.action is not None or self.case_reference is not None or self.user_id is not None


@dataclass(frozen=True)
class TrailRow:
    seq: int
    created_at: datetime
    actor: str
    actor_id: int | None
    action: AuditAction
    case_reference: str | None
    target_user_id: int | None
    target_label: str | None
    detail: tuple[tuple[str, str], ...]

    @property
    def action_label(self) -> str:
        return self.action.value.replace("-", " ")


@dataclass(frozen=True)
class TrailPage:
    rows: list[TrailRow]
    older_than: int | None  # pass as `before` for the next page; None when this is the oldest page


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    display_name: str
    role: str


def read_trail(session: Session, query: TrailQuery, page_size: int) -> TrailPage:
    statement = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(page_size + 1)
    if query.action is not None:
        statement = statement.where(AuditEntry.action == query.action)
    if query.case_reference is not None:
        statement = statement.where(AuditEntry.case_reference == query.case_reference)
    if query.user_id is not None:
        statement = statement.where(or_(AuditEntry.actor_id == query.user_id,
                                        AuditEntry.target_user_id == query.user_id))
    if query.before is not None:
        statement = statement.where(AuditEntry.id < query.before)
    entries = list(session.scalars(statement))
    more = len(entries) > page_size
    entries = entries[:page_size]
    names = _usernames(session, {e.target_user_id for e in entries if e.target_user_id is not None})
    rows = [TrailRow(e.id, e.created_at.astimezone(timezone.utc), e.actor, e.actor_id, e.action, e.case_reference, e.target_user_id,
                     names.get(e.target_user_id), _detail_pairs(e.detail)) for e in entries]
    return TrailPage(rows, entries[-1].id if more and entries else None)


def accounts(session: Session) -> list[Account]:
    users = session.scalars(select(User).order_by(User.username))
    return [Account(u.id, u.username, u.display_name, u.role.value) for u in users]


def find_account(session: Session, user_id: int) -> Account | None:
    user = session.get(User, user_id)
    return Account(user.id, user.username, user.display_name, user.role.value) if user else None


def _usernames(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.username).where(User.id.in_(ids))).all())


def _detail_pairs(text: str) -> tuple[tuple[str, str], ...]:
    # Details are ids, counts and status values; shown as they are, escaped by the template.
    try:
        detail = json.loads(text or "{}")
    except ValueError:
        return (("unreadable", text[:80]),)
    if not isinstance(detail, dict):
        return (("value", str(detail)[:80]),)
    return tuple((str(key), json.dumps(value) if isinstance(value, (dict, list)) else str(value))
                 for key, value in sorted(detail.items()))
