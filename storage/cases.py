"""Opening cases, unlocking them from a later call, and sealing what callers leave (never opening it:
that is console/keys.py)."""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import bindparam, delete, event, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from storage.blobs import BlobStore, DatabaseBlobStore, new_blob_key
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
    """A new case under a fresh reference (the rare collision is skipped by the INSERT itself and another
    reference tried: no savepoint, which is two more round trips to PostgreSQL). Failures keyed in against
    that reference before it was a case were not attempts on this one: they go. Plain SQL on the session's
    connection (the busiest write of a new report), times as the line's flush would round them
    (storage/anonymity.py)."""
    from storage.anonymity import stamp

    connection = session.connection()
    when = stamp(session, anonymous)
    statement = _new_case(connection.dialect.name)
    for _ in range(20):
        reference = CaseReference.generate().digits
        result = connection.execute(statement, {"reference": reference, "anonymous": anonymous,
                                                "pin_length": PIN_LENGTH, "created_at": when, "updated_at": when})
        if result.rowcount == 1:
            _forget_failures(session, reference)
            return OpenedCase(result.inserted_primary_key[0], reference, anonymous)
    raise RuntimeError("could not find an unused case reference")


@functools.cache
def _new_case(dialect: str):
    # Its other columns take their defaults (a random id, status "new", ...). ON CONFLICT DO NOTHING, with no
    # target: a reference in use, or (rarer still) an id, makes no row and no error that would end the
    # transaction on PostgreSQL. The hotline runs on these two databases.
    dialect_insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    # preserve_rowcount: SQLAlchemy keeps an INSERT's row count only when asked; 0 means the reference was taken.
    return dialect_insert(Case.__table__).on_conflict_do_nothing().execution_options(preserve_rowcount=True)


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

def case_period(case) -> str:
    """The period whose key a case's items are sealed under: the calendar month (UTC) it was opened in,
    unless its items were re-sealed under a later month's key (Case.key_period, console/reseal.py)."""
    return getattr(case, "key_period", None) or period_of(case.created_at or utcnow())


@functools.cache
def _period_statements():
    cases = Case.__table__
    read = select(cases.c.key_period, cases.c.created_at).where(cases.c.id == bindparam("case_id"))
    return read, read.with_for_update()


def current_case_period(session: Session, case: Case, *, lock: bool = False) -> str:
    """case_period as the database has it now, not as this session read it earlier: a session that loaded
    the case before a re-seal committed would seal under the period the re-seal is emptying, whose key is
    about to go. lock: hold the case's row (PostgreSQL) until the caller commits, so no re-seal switches
    it meanwhile. The case object is brought up to date too (without marking it changed)."""
    session.flush()  # a change to the case made in this session (a new created_at) is what counts
    read, locked = _period_statements()
    row = session.connection().execute(locked if lock else read, {"case_id": case.id}).first()
    if row is None:  # not in the database (a case object never flushed): what the object says
        return case_period(case)
    key_period, created_at = row
    if isinstance(case, Case) and case.key_period != key_period:
        set_committed_value(case, "key_period", key_period)
    return key_period or period_of(created_at or utcnow())


# Bytes a folder blob store is to delete once the session's transaction commits (Sealer._replace).
_REPLACED_BLOBS = "hotline.replaced_blobs"


def _delete_replaced_once_committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the transaction it is part of may still roll back
    for blobs, key in session.info.pop(_REPLACED_BLOBS, []):
        blobs.delete(session, key)


def _keep_replaced(session: Session, *_) -> None:
    # Rolled back (a savepoint too), or closed uncommitted: the rows point at the old bytes again, which
    # must stay. At worst a new blob is left that nothing points at, as a crash leaves one.
    session.info.pop(_REPLACED_BLOBS, None)


def _keep_replaced_unless_committed(session: Session, transaction) -> None:
    if transaction.parent is None:
        _keep_replaced(session)


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
        to the key of the case's period (v3: case_period, the month it was opened in unless re-sealed), so
        that purging a period's cases and then destroying its key reaches every backup.

        A re-seal of the case's period (console/reseal.py) may commit while this runs, with this session's
        copy of the case read before it. So once the item's row is written, the case's period is read again:
        the row's foreign key holds the case row (PostgreSQL: a re-seal's FOR UPDATE waits for this
        transaction; SQLite: this transaction holds the one write lock), so what is read is what stands
        until this commits. If it moved, the item is sealed again at once under the new period."""
        period = case_period(case) if self.periods is not None else None
        key = new_blob_key(kind)
        sealed = self._seal(case.reference, kind, key, owner, plaintext, period)
        self.blobs.put(session, key, sealed)
        item = SealedItem(case_id=case.id, kind=kind, blob_key=key, size=len(sealed), key_period=period,
                          note=json.dumps(note) if note else None)
        session.add(item)
        session.flush()
        if self.periods is not None:
            current = current_case_period(session, case)
            if current != period:
                self._replace(session, item, case.reference, plaintext, owner, current)
        return item

    def reseal_item(self, session: Session, item: SealedItem, plaintext: bytes, owner: str) -> None:
        """Seal an item's plaintext again under its case's period key (the console opened it: a key
        rotation moves v1 and v2 items under period keys; a period's re-seal moves them to a later period,
        console/reseal.py). A new blob key, so the old bytes are deleted, not overwritten: in the database
        store in this transaction, in a folder store once it commits (a rollback leaves the row pointing
        at the old bytes, which must still be there). The case's row is read, and held, first."""
        period = current_case_period(session, item.case, lock=True) if self.periods is not None else None
        self._replace(session, item, item.case.reference, plaintext, owner, period)

    def _replace(self, session: Session, item: SealedItem, reference: str, plaintext: bytes, owner: str,
                 period: str | None) -> None:
        key = new_blob_key(item.kind)
        sealed = self._seal(reference, item.kind, key, owner, plaintext, period)
        self.blobs.put(session, key, sealed)
        old_key = item.blob_key
        item.blob_key, item.size, item.key_period = key, len(sealed), period
        session.flush()
        if isinstance(self.blobs, DatabaseBlobStore):
            self.blobs.delete(session, old_key)
            return
        # A folder store unlinks at once: only once this transaction has committed, or a rollback would
        # leave the row pointing at bytes that are gone.
        if not event.contains(session, "after_commit", _delete_replaced_once_committed):
            event.listen(session, "after_commit", _delete_replaced_once_committed)
            event.listen(session, "after_soft_rollback", _keep_replaced)
            event.listen(session, "after_transaction_end", _keep_replaced_unless_committed)
        session.info.setdefault(_REPLACED_BLOBS, []).append((self.blobs, old_key))

    def _seal(self, reference: str, kind: str, key: str, owner: str, plaintext: bytes, period: str | None) -> bytes:
        context = SealContext(reference, kind, key, owner)
        if period is None:
            return seal(self.public_key, plaintext, context)
        return seal_to_period(self.periods.public_key(period, self.public_key), period, plaintext, context)

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
