"""Opening cases, unlocking them from a later call, and sealing what callers leave (never opening it:
that is console/keys.py)."""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.blobs import BlobStore, new_blob_key
from storage.crypto import CASE_OWNER, SealContext, period_of, seal, seal_to_period
from storage.keystore import KeyStore
from storage.models import Case, ReferenceFailureHour, ReferenceLock, SealedItem, UnlockFailureHour, utcnow
from storage.references import PIN_LENGTH, CaseReference, pin_matches

log = logging.getLogger("hotline.storage.lockout")

# Failed PINs against one reference, in all, after which it stays locked until a handler (the case page)
# or an operator (`flask --app console unlock REFERENCE`) unlocks it. Not reset by the hour, nor by the
# right PIN: a guesser gets 10 tries, not 10 between each of the caller's own call-backs.
UNLOCK_FAILURE_LIMIT = 10
# Failed PINs across all references in one clock hour above which the alert is logged (once an hour).
UNLOCK_ALERT_THRESHOLD = 30
HOURLY_COUNTS_KEPT = timedelta(days=7)  # the all-references counts, kept a week for context
UNKNOWN_REFERENCE = "00000000"  # what a malformed reference counts against


@dataclass(frozen=True)
class OpenedCase:
    """What the line needs of a case it has just opened (ivr/desk.py), without loading the ORM object."""

    id: int
    reference: str
    anonymous: bool
    pin_length: int = PIN_LENGTH


def open_case_row(session: Session, anonymous: bool) -> OpenedCase:
    """A new case under a fresh reference (retrying the rare collision inside a savepoint). Failures
    keyed in against that reference before it was a case were not attempts on this one: they go.
    Plain SQL on the session's connection (the busiest write of a new report), times as the line's
    flush would round them (storage/anonymity.py)."""
    from storage.anonymity import stamp

    connection = session.connection()
    when = stamp(session, anonymous)
    for _ in range(20):
        reference = CaseReference.generate().digits
        try:
            with connection.begin_nested():
                result = connection.execute(_new_case(), {"reference": reference, "anonymous": anonymous,
                                                          "pin_length": PIN_LENGTH, "created_at": when,
                                                          "updated_at": when})
                _forget_failures(session, reference)
            return OpenedCase(result.inserted_primary_key[0], reference, anonymous)
        except IntegrityError:
            continue
    raise RuntimeError("could not find an unused case reference")


@functools.cache
def _new_case():
    return insert(Case.__table__)  # its other columns take their defaults (a random id, status "new", ...)


def open_case(session: Session, anonymous: bool) -> Case:
    """open_case_row, as the ORM object."""
    return session.get(Case, open_case_row(session, anonymous).id)


def find_case(session: Session, reference: str) -> Case | None:
    return session.scalar(select(Case).where(Case.reference == reference))


@dataclass(frozen=True)
class UnlockResult:
    case: Case | None
    locked: bool


def unlock_case(session: Session, secret_key: str, reference: str, pin: str, now: datetime | None = None) -> UnlockResult:
    """Check a reference and PIN together. Whatever is wrong, the caller is told the same thing.

    Each attempt is counted as a failure first, atomically and in a transaction of its own that commits
    before the PIN is even looked at, so concurrent attempts all count and a failure later in the
    request cannot undo the count; the right PIN then takes its own attempt back. Failures count against
    the reference as keyed in, existing or not, so a lock says nothing about whether a case exists;
    every path does the same constant-time PIN comparison.

    Commits the session: first whatever the caller had pending (on SQLite a second connection would
    wait on this one's write lock), then the count, then a success's refund.
    """
    now = now or utcnow()
    reference = reference if CaseReference.is_well_formed(reference) else UNKNOWN_REFERENCE
    entered = pin if pin.isascii() and pin.isdigit() else "x"
    session.commit()
    failures = _count_failure(session, reference, now)
    case = find_case(session, reference)
    pin_ok = pin_matches(secret_key, reference, entered, case.pin_length if case is not None else PIN_LENGTH)
    locked_before = failures - 1 >= UNLOCK_FAILURE_LIMIT  # the failures counted before this attempt
    if case is not None and pin_ok and not locked_before:
        _refund_failure(session, reference, now)
        return UnlockResult(case, False)
    return UnlockResult(None, failures >= UNLOCK_FAILURE_LIMIT)


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _upsert(session: Session, model, key: dict, counted):
    """INSERT ... ON CONFLICT DO UPDATE SET failures = failures + 1 (SQLite 3.24+ and PostgreSQL): one
    statement, so concurrent attempts neither collide on the first insert nor lose an increment."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(model).values(**key, failures=1).on_conflict_do_update(
        index_elements=list(key), set_={"failures": model.failures + 1})
    return statement.returning(model.failures) if counted else statement


def _count_failure(session: Session, reference: str, now: datetime) -> int:
    """Count one failed attempt (against the reference, its hour, and all references' hour) and commit.
    Returns the reference's failures, this one included. Always the same order of rows, so concurrent
    attempts queue rather than deadlock."""
    hour = _hour(now)
    try:
        failures = session.execute(_upsert(session, ReferenceLock, {"reference": reference}, True)).scalar_one()
        session.execute(_upsert(session, ReferenceFailureHour, {"reference": reference, "hour": hour}, False))
        everywhere = session.execute(_upsert(session, UnlockFailureHour, {"hour": hour}, True)).scalar_one()
        session.execute(delete(UnlockFailureHour).where(UnlockFailureHour.hour < hour - HOURLY_COUNTS_KEPT))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if everywhere == UNLOCK_ALERT_THRESHOLD + 1:
        # Someone may be guessing PINs across many references. No reference, count or caller data here.
        log.warning("ALERT: more than %d failed PIN attempts across all references this hour; "
                    "the console's inbox shows the count, each case page its own", UNLOCK_ALERT_THRESHOLD)
    return failures


def _refund_failure(session: Session, reference: str, now: datetime) -> None:
    """The right PIN: take back the failure counted for this attempt (the earlier ones stay), and commit."""
    hour = _hour(now)
    try:
        session.execute(update(ReferenceLock).where(ReferenceLock.reference == reference)
                        .values(failures=ReferenceLock.failures - 1))
        session.execute(delete(ReferenceLock).where(ReferenceLock.reference == reference, ReferenceLock.failures <= 0))
        lock_hour = (ReferenceFailureHour.reference == reference, ReferenceFailureHour.hour == hour)
        session.execute(update(ReferenceFailureHour).where(*lock_hour).values(failures=ReferenceFailureHour.failures - 1))
        session.execute(delete(ReferenceFailureHour).where(*lock_hour, ReferenceFailureHour.failures <= 0))
        session.execute(update(UnlockFailureHour).where(UnlockFailureHour.hour == hour)
                        .values(failures=UnlockFailureHour.failures - 1))
        session.commit()
    except BaseException:
        session.rollback()
        raise


@dataclass(frozen=True)
class LockState:
    """A reference's failed attempts since a person last unlocked it, and the hours they fell in."""

    failures: int
    hours: list[tuple[datetime, int]]  # (start of the hour, failures in it), oldest first

    @property
    def locked(self) -> bool:
        return self.failures >= UNLOCK_FAILURE_LIMIT


def lock_state(session: Session, reference: str) -> LockState:
    failures = session.scalar(select(ReferenceLock.failures).where(ReferenceLock.reference == reference)) or 0
    hours = session.execute(
        select(ReferenceFailureHour.hour, ReferenceFailureHour.failures)
        .where(ReferenceFailureHour.reference == reference, ReferenceFailureHour.failures > 0)
        .order_by(ReferenceFailureHour.hour)
    ).all()
    return LockState(failures, [(hour, count) for hour, count in hours])


def unlock_reference(session: Session, reference: str) -> int:
    """A handler's or operator's unlock: the reference's failures are forgotten. Returns how many there
    were. The caller audits it and commits."""
    return _forget_failures(session, reference)


def _forget_failures(session: Session, reference: str) -> int:
    # On the session's connection: these rows are never loaded as objects, so nothing in the session goes stale.
    forget_lock, forget_hours = _forget_statements()
    connection = session.connection()
    failures = connection.execute(forget_lock, {"reference": reference}).scalar()
    connection.execute(forget_hours, {"reference": reference})
    return failures or 0


@functools.cache
def _forget_statements():
    return (delete(ReferenceLock).where(ReferenceLock.reference == bindparam("reference")).returning(ReferenceLock.failures),
            delete(ReferenceFailureHour).where(ReferenceFailureHour.reference == bindparam("reference")))


def failures_this_hour(session: Session, now: datetime | None = None) -> int:
    """Failed PIN attempts across all references in the current clock hour (the alert's count)."""
    return session.scalar(select(UnlockFailureHour.failures).where(UnlockFailureHour.hour == _hour(now or utcnow()))) or 0


# --- sealed items --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sealer:
    """The webhooks' and workers' view of storage: they can seal, never open."""

    public_key: X25519PublicKey
    blobs: BlobStore
    # Where the period keys are (storage/keystore.py). None only for code that predates them (tests of
    # v2 seals): items are then sealed straight to the hotline key, and no deletion reaches backups.
    periods: KeyStore | None = None

    def seal_item(self, session: Session, case: Case, kind: str, plaintext: bytes, note: dict | None = None,
                  *, owner: str = CASE_OWNER) -> SealedItem:
        """Seal and store one item, bound to its case, kind, blob key and owner: what will point at it
        (take_owner, version_owner, event_owner below; CASE_OWNER for what belongs to the case as a whole).
        The console opens it through that pointer only (console/keys.py). With a key store, the seal is
        to the period key of the month the case was opened in (v3), so that purging a period's cases and
        then destroying its key reaches every backup."""
        key = new_blob_key(kind)
        sealed, period = self._seal(case, kind, key, owner, plaintext)
        self.blobs.put(session, key, sealed)
        item = SealedItem(case_id=case.id, kind=kind, blob_key=key, size=len(sealed), key_period=period,
                          note=json.dumps(note) if note else None)
        session.add(item)
        session.flush()
        return item

    def reseal_item(self, session: Session, item: SealedItem, plaintext: bytes, owner: str) -> None:
        """Seal an item's plaintext again under its period key (the console opened it: key rotation moves
        v1 and v2 items under period keys). A new blob key, so the old bytes are deleted, not overwritten."""
        key = new_blob_key(item.kind)
        sealed, period = self._seal(item.case, item.kind, key, owner, plaintext)
        self.blobs.put(session, key, sealed)
        old_key = item.blob_key
        item.blob_key, item.size, item.key_period = key, len(sealed), period
        session.flush()
        self.blobs.delete(session, old_key)

    def _seal(self, case: Case, kind: str, key: str, owner: str, plaintext: bytes) -> tuple[bytes, str | None]:
        context = SealContext(case.reference, kind, key, owner)
        if self.periods is None:
            return seal(self.public_key, plaintext, context), None
        period = period_of(case.created_at or utcnow())
        return seal_to_period(self.periods.public_key(period, self.public_key), period, plaintext, context), period

    def destroy_item(self, session: Session, item: SealedItem) -> None:
        self.blobs.delete(session, item.blob_key)
        session.delete(item)


def take_owner(recording_id: int) -> str:
    """A take's audio (Recording.audio_item_id) and machine transcript (Recording.transcript_item_id)."""
    return f"recording:{recording_id}"


def version_owner(recording_id: int, version: int) -> str:
    """A handler's corrected transcript (TranscriptVersion.item_id of that take and version)."""
    return f"recording:{recording_id}/version:{version}"


def event_owner(event_id: int) -> str:
    """A note's text or a status change's reason (CaseEvent.item_id)."""
    return f"case-event:{event_id}"


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
