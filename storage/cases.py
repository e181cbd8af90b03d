"""Opening cases, unlocking them from a later call, and sealing what callers leave (never opening it:
that is console/keys.py)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.blobs import BlobStore, new_blob_key
from storage.crypto import SealContext, seal
from storage.models import Case, ReferenceLock, SealedItem, utcnow
from storage.references import CaseReference, pin_matches

UNLOCK_FAILURE_LIMIT = 5
UNLOCK_LOCK_PERIOD = timedelta(hours=1)


def open_case(session: Session, anonymous: bool) -> Case:
    """A new case under a fresh reference (retrying the rare collision inside a savepoint)."""
    for _ in range(20):
        case = Case(reference=CaseReference.generate().digits, anonymous=anonymous)
        try:
            with session.begin_nested():
                session.add(case)
                session.flush()
            return case
        except IntegrityError:
            continue
    raise RuntimeError("could not find an unused case reference")


def find_case(session: Session, reference: str) -> Case | None:
    return session.scalar(select(Case).where(Case.reference == reference))


@dataclass(frozen=True)
class UnlockResult:
    case: Case | None
    locked: bool


def unlock_case(session: Session, secret_key: str, reference: str, pin: str, now: datetime | None = None) -> UnlockResult:
    """Check a reference and PIN together. Whatever is wrong, the caller is told the same thing.

    Failures count against the reference as keyed in, existing or not, so a lock says nothing about
    whether a case exists; every path does the same constant-time PIN comparison.
    """
    now = now or utcnow()
    reference = reference if CaseReference.is_well_formed(reference) else "00000000"
    lock = session.get(ReferenceLock, reference, with_for_update=True)
    case = find_case(session, reference)
    pin_ok = pin_matches(secret_key, reference, pin if pin.isascii() and pin.isdigit() else "x")
    locked = lock is not None and lock.locked_until is not None and lock.locked_until > now
    if case is not None and pin_ok and not locked:
        if lock is not None:
            session.delete(lock)
        return UnlockResult(case, False)
    if lock is None:
        lock = ReferenceLock(reference=reference, failures=0)
        session.add(lock)
    if lock.locked_until is not None and lock.locked_until <= now:
        lock.failures, lock.locked_until = 0, None
    if not locked:
        lock.failures += 1
        if lock.failures >= UNLOCK_FAILURE_LIMIT:
            lock.locked_until = now + UNLOCK_LOCK_PERIOD
    return UnlockResult(None, lock.locked_until is not None and lock.locked_until > now)


# --- sealed items --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sealer:
    """The webhooks' and workers' view of storage: they can seal, never open."""

    public_key: X25519PublicKey
    blobs: BlobStore

    def seal_item(self, session: Session, case: Case, kind: str, plaintext: bytes, note: dict | None = None) -> SealedItem:
        sealed = seal(self.public_key, plaintext, SealContext(case.reference, kind))
        key = new_blob_key(kind)
        self.blobs.put(session, key, sealed)
        item = SealedItem(case_id=case.id, kind=kind, blob_key=key, size=len(sealed), note=json.dumps(note) if note else None)
        session.add(item)
        session.flush()
        return item

    def destroy_item(self, session: Session, item: SealedItem) -> None:
        self.blobs.delete(session, item.blob_key)
        session.delete(item)


def seal_contact_number(session: Session, sealer: Sealer, case: Case, number: str, confirmed: bool) -> SealedItem:
    """Contact details are sealed the moment they are known; an unconfirmed entry is replaced, not kept."""
    for earlier in [item for item in case.items if item.kind == "contact" and not _is_confirmed(item)]:
        sealer.destroy_item(session, earlier)
    payload = json.dumps({"phone_number": number}).encode()
    return sealer.seal_item(session, case, "contact", payload, note={"confirmed": confirmed})


def confirm_contact(session: Session, case: Case) -> bool:
    pending = [item for item in case.items if item.kind == "contact" and not _is_confirmed(item)]
    for item in pending:
        item.note = json.dumps({"confirmed": True})
    return bool(pending)


def _is_confirmed(item: SealedItem) -> bool:
    return bool(item.note and json.loads(item.note).get("confirmed"))
