"""Rotating the hotline key: a new key pair takes over, and the old one is retired.

What the hotline key opens since migration 0008 is the period keys (storage/keystore.py), plus items sealed
before that straight to it (v1, v2). So a rotation, run by the operator with the old private key:

1. makes a new key pair and records it in the key store as the old key's successor: its public key (the
   line and workers make new period keys for it from then on, even before their hotline.pub is replaced),
   and its private key sealed to the old public key;
2. re-wraps every period key from the old hotline key to the new one;
3. seals every v1 and v2 item again, under its case's period key (v3), and deletes its old bytes;
4. ends every console session, whose copy of the old key opens nothing any more.

Accounts hold the old key wrapped under their passwords, which the operator does not know. Each account
takes up the new key at its next sign-in (or enrolment, for an invitation made before the rotation): its
old copy opens the successor record, the new key is wrapped under the password just typed, and that is
audited (upgrade_account_key). Retiring the old key (retire) erases the successor's sealed private key, so
from then on only the new key opens anything; accounts and invitations still on the old key are disabled,
and an admin enables them again (a new invitation, wrapped from the admin's new key).

Why at sign-in rather than all at once: nothing but the account's password opens its copy, and the
console never keeps passwords. The cost: while the old key is not yet retired, whoever holds it (a copy
of the old hotline.key, or an old account copy and its password) can also open the new one. For a key
believed stolen, retire straight after rotating and re-invite everyone.
"""
from __future__ import annotations

import json
import logging
from base64 import b64decode
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.keys import open_item_with_owner, open_successor, seal_successor, unwrap_period_private, wrap_for_account
from console.keys import PasswordKdf
from storage.audit import record
from storage.cases import CASE_OWNER, Sealer, event_owner, take_owner, version_owner
from storage.crypto import public_key_fingerprint, raw_public_bytes, wrap_period_private
from storage.keystore import KeyStore, KeySuccessor, PeriodKey
from storage.models import AuditAction, CaseEvent, Recording, SealedItem, SessionEnd, TranscriptVersion, User

log = logging.getLogger("hotline.console.rotation")
BATCH = 100  # items sealed again per commit


class RotationError(Exception):
    pass


@dataclass(frozen=True)
class Rotation:
    old_key: str
    new_key: str
    period_keys: int
    items_resealed: int
    sessions_ended: int


def owner_by_pointer(session: Session, item: SealedItem) -> str:
    """What points at a v1 item (whose seal names no owner): its take, correction or event, else its case."""
    take = session.scalar(select(Recording.id).where(
        (Recording.audio_item_id == item.id) | (Recording.transcript_item_id == item.id)))
    if take is not None:
        return take_owner(take)
    version = session.scalar(select(TranscriptVersion).where(TranscriptVersion.item_id == item.id))
    if version is not None:
        return version_owner(version.recording_id, version.version)
    event_id = session.scalar(select(CaseEvent.id).where(CaseEvent.item_id == item.id))
    return event_owner(event_id) if event_id is not None else CASE_OWNER


def rotate(session: Session, store: KeyStore, sealer: Sealer, sessions, old_private: X25519PrivateKey,
           new_private: X25519PrivateKey) -> Rotation:
    """Steps 1 to 4 above. Re-runnable: whatever is still on the old key is moved (e.g. a period key a
    line made meanwhile). Commits as it goes (the key store and the database are two transactions)."""
    old_public, new_public = old_private.public_key(), new_private.public_key()
    old_fp, new_fp = public_key_fingerprint(old_public), public_key_fingerprint(new_public)
    if old_fp == new_fp:
        raise RotationError("the new key is the old key")
    with store.session() as keys:
        successor = keys.get(KeySuccessor, old_fp)
        if successor is None:
            keys.add(KeySuccessor(old_key=old_fp, new_key=new_fp, new_public=raw_public_bytes(new_public),
                                  sealed_new_private=seal_successor(old_public, new_private)))
        elif successor.new_key != new_fp:
            raise RotationError(f"key {old_fp} was already rotated to {successor.new_key}")
        moved = 0
        for row in keys.scalars(select(PeriodKey).where(PeriodKey.hotline_key == old_fp)):
            period_private = unwrap_period_private(old_private, row.period, row.public_key, row.sealed_private)
            row.sealed_private = wrap_period_private(new_public, row.period, period_private)
            row.hotline_key = new_fp
            moved += 1
        keys.commit()
    sealer = Sealer(new_public, sealer.blobs, store)  # v3 under period keys, now wrapped to the new key
    resealed = 0
    while True:
        batch = session.scalars(select(SealedItem).where(SealedItem.key_period.is_(None))
                                .order_by(SealedItem.id).limit(BATCH)).all()
        if not batch:
            break
        for item in batch:
            data, owner = open_item_with_owner(session, old_private, sealer.blobs, item, store)
            sealer.reseal_item(session, item, data, owner or owner_by_pointer(session, item))
            resealed += 1
        session.commit()
    ended = sum(sessions.end_for_user(session, user_id, SessionEnd.ENDED_BY_ADMIN)
                for user_id in session.scalars(select(User.id)))
    record(session, AuditAction.HOTLINE_KEY_ROTATED, actor_label="operator",
           detail={"from": old_fp, "to": new_fp, "period_keys": moved, "items": resealed, "sessions_ended": ended})
    session.commit()
    return Rotation(old_fp, new_fp, moved, resealed, ended)


def _copy_key(document: str | None) -> str | None:
    """The fingerprint of the hotline key a wrapped copy holds (its public key is in the clear)."""
    if not document:
        return None
    try:
        return public_key_fingerprint(X25519PublicKey.from_public_bytes(b64decode(json.loads(document)["public_key"])))
    except (ValueError, KeyError, TypeError):
        return None


def upgrade_account_key(session: Session, store: KeyStore | None, user: User, password: str,
                        private_key: X25519PrivateKey, kdf: PasswordKdf) -> X25519PrivateKey:
    """At sign-in or enrolment, with the password just checked: if the account's key has a successor
    not yet retired, take it up (wrapped under the password, audited) and return it; else the key as is."""
    if store is None:
        return private_key
    for _ in range(16):
        with store.session() as keys:
            successor = keys.get(KeySuccessor, public_key_fingerprint(private_key.public_key()))
        if successor is None or successor.sealed_new_private is None:
            return private_key
        new_private = open_successor(private_key, successor.sealed_new_private, successor.new_public)
        user.wrapped_key = wrap_for_account(new_private, password, user.id, kdf)
        record(session, AuditAction.ACCOUNT_KEY_UPGRADED, actor=user, target_user_id=user.id,
               detail={"from": successor.old_key, "to": successor.new_key})
        private_key = new_private
    return private_key


@dataclass(frozen=True)
class Retirement:
    old_key: str
    accounts_disabled: list[str]


def retire(session: Session, store: KeyStore, sessions, old_key: str) -> Retirement:
    """Erase the old key's successor copy once nothing is on the old key but accounts that have not
    signed in since: those are disabled (an admin enables them again). The caller commits."""
    from console.accounts.services import disable

    with store.session() as keys:
        successor = keys.get(KeySuccessor, old_key)
        if successor is None:
            raise RotationError(f"key {old_key} has not been rotated")
        left = keys.scalars(select(PeriodKey.period).where(PeriodKey.hotline_key == old_key)).all()
    if left:
        raise RotationError(f"period keys still sealed to {old_key}: {', '.join(left)}; run keys rotate again")
    legacy = session.scalar(select(SealedItem.id).where(SealedItem.key_period.is_(None)).limit(1))
    if legacy is not None:
        raise RotationError("items are still sealed straight to a hotline key; run keys rotate again")
    disabled = []
    for user in session.scalars(select(User).where(User.disabled_at.is_(None)).order_by(User.id)):
        if old_key in (_copy_key(user.wrapped_key), _copy_key(user.invite_wrapped_key)):
            disable(user)
            sessions.end_for_user(session, user.id, SessionEnd.ACCOUNT_DISABLED)
            record(session, AuditAction.ACCOUNT_DISABLED, actor_label="operator", target_user_id=user.id,
                   detail={"by": "keys retire", "key": old_key})
            disabled.append(user.username)
    record(session, AuditAction.HOTLINE_KEY_RETIRED, actor_label="operator",
           detail={"key": old_key, "accounts_disabled": len(disabled)})
    session.flush()
    with store.session() as keys:
        keys.get(KeySuccessor, old_key).sealed_new_private = None  # the line still follows new_public
        keys.commit()
    return Retirement(old_key, disabled)
