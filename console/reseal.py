"""Re-sealing a past period's cases under this month's key, so that the period's own key can go early.

Each case's items are sealed (seal v3) to the key of its period: the month it was opened in. The purge
destroys a period's key once none of its cases is left (storage/retention.py spent_periods), so one case
referred for a year keeps its whole month open, in every backup of the database, for that year: every case
of the month already purged would still open from an old backup, with the hotline key. Re-sealing the
month's remaining cases under a later key lets the month's key be destroyed now.

For every case still on the period P (Case.key_period is P, or is None and it was opened in P's month), one
case at a time, in short transactions (the line writes the same database):

1. its row is locked (FOR UPDATE) and its key_period set to the target, this month (period_of(now)),
   whose key the key store makes if it has none yet; from then on the line, the workers and the console
   seal whatever comes for the case (a note, a correction, a call-back's take) under the target;
2. each of its items still sealed under P is opened (P's key, opened with the hotline key) and sealed again
   under the target by Sealer.reseal_item (a new blob key, the old bytes deleted), checked to open, in
   batches of a few items or megabytes, each batch committed;
3. the transaction that moves its last item appends PERIOD_RESEALED for it: the reference, the two periods
   and how many items, no content. A case on legal hold is re-sealed like any other (a hold is about
   purging, not keys).

Then P's key is destroyed at once, as the purge would (spent_periods, KeyStore.destroy, PERIOD_KEY_DESTROYED
with the period, the key store VACUUMed), if nothing uses it any more and its month ended over
PERIOD_KEY_GRACE ago; within that grace it is left to the first purge after it. From then on every copy of
the case's old bytes, in every backup, is random bytes, while the case itself still opens, under the target.

Why the row lock in 1: something sealing an item for the case may have read the case before the switch
(a job, a webhook, another handler). Sealer.seal_item reads the case's period again once its item's row is
written, and that row's foreign key holds the case row until it commits (KEY SHARE on PostgreSQL, which
FOR UPDATE waits for, and a plain UPDATE would not; SQLite's one write lock): either it sealed before the
switch and committed its item under P, which step 2 then finds, or it sees the target and seals under it.

Safe to run again, and to resume after a crash: a case already switched and half moved (some items under the
target, some under P: both open) is found again by its items still under P. A period whose key is destroyed
or missing is refused, and so are this month and later ones (nothing to gain: the target is this month).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from console.keys import PeriodKeys, open_item, open_item_with_owner
from storage.audit import record
from storage.blobs import BlobMissing
from storage.cases import Sealer, case_period
from storage.crypto import SealError, check_period, period_of
from storage.keystore import KeyStore
from storage.models import AuditAction, Case, SealedItem, User, utcnow
from storage.compaction import vacuum_key_store
from storage.retention import PERIOD_KEY_GRACE, destroy_spent_keys, on_period, period_bounds, period_in_use

log = logging.getLogger("hotline.console.reseal")

BATCH_ITEMS = 20  # items sealed again per commit, at most ...
BATCH_BYTES = 8 * 1024 * 1024  # ... and about this many sealed bytes (a take's audio is ~1 MB a minute)
ROUNDS = 3  # passes over what is left on the period (a case opened, or an item sealed, while it ran)


class ResealRefused(Exception):
    """The period cannot be re-sealed, and nothing was changed. The message is for the person who asked."""


class ResealStopped(Exception):
    """Stopped part way (an item that does not open). What was moved stays moved; the period's key is kept."""


@dataclass(frozen=True)
class Reseal:
    period: str
    target: str
    cases: int  # cases this run moved (switched, or finished moving)
    items: int  # items this run sealed again
    key_destroyed: bool
    key_kept: str | None = None  # why the key is still there, if it is
    cases_left: int = 0  # cases still on the period when a run given `seconds` stopped at its limit


def target_for(store: KeyStore | None, period: str, now: datetime | None = None) -> str:
    """The period P's cases would be re-sealed under (this month), or ResealRefused. Opens nothing."""
    try:
        check_period(period)
    except ValueError:
        raise ResealRefused("That is not a period (a month, as 2026-03).") from None
    if store is None:
        raise ResealRefused("No key store is configured (HOTLINE_KEY_STORE_URL): there are no period keys.")
    target = period_of(now or utcnow())
    if period >= target:
        raise ResealRefused(f"Period {period} is this month or later: its cases are already under the newest "
                            "key, so re-sealing them would gain nothing.")
    if store.get(period) is None:
        raise ResealRefused(f"The key of period {period} is already destroyed (or not in this key store): "
                            "there is nothing left to re-seal under a newer key.")
    return target


def reseal_period(session: Session, store: KeyStore | None, sealer: Sealer, hotline_private: X25519PrivateKey,
                  period: str, *, actor: User | None = None, actor_label: str = "operator",
                  now: datetime | None = None, seconds: float | None = None) -> Reseal:
    """Move every case of the period under this month's key, then destroy the period's key if it can go
    now (see the module's docstring). Commits as it goes. actor: the signed-in supervisor (else
    actor_label, for the operator's command), named in the audit entries. seconds: start no case after
    this long (the first always), and return with cases_left, the key kept; running it again goes on."""
    started = time.monotonic()
    now = now or utcnow()
    target = target_for(store, period, now)
    keys = PeriodKeys(hotline_private, store)
    try:
        keys.private_key(period)
    except SealError:
        raise ResealRefused(f"The key of period {period} does not open with this hotline key: nothing was "
                            "re-sealed.") from None
    store.public_key(target, sealer.public_key)  # made now if this month has no key yet
    try:
        keys.private_key(target)
    except SealError:
        raise ResealRefused(f"This month's key ({target}) does not open with this hotline key (rotated "
                            "since?): nothing was re-sealed.") from None
    who = {"actor": actor} if actor is not None else {"actor_label": actor_label}
    moved_cases = moved_items = 0
    for _ in range(ROUNDS):
        left = _cases_on(session, period)
        session.rollback()  # end the read: each case gets a transaction of its own
        if not left:
            break
        for case_id in left:
            if seconds is not None and (moved_cases or moved_items) and time.monotonic() - started >= seconds:
                remaining = len(_cases_on(session, period))
                session.rollback()
                return Reseal(period, target, moved_cases, moved_items, False,
                              f"{remaining} {'case is' if remaining == 1 else 'cases are'} still to move",
                              cases_left=remaining)
            moved = _reseal_case(session, sealer, keys, hotline_private, period, target, case_id, who)
            if moved is not None:
                moved_cases += 1
                moved_items += moved
    destroyed, kept = _destroy_if_spent(session, store, period, now, who)
    if moved_cases or destroyed:
        log.info("period %s: %d cases and %d items re-sealed under %s; key %s", period, moved_cases,
                 moved_items, target, "destroyed" if destroyed else "kept")
    return Reseal(period, target, moved_cases, moved_items, destroyed, kept)


def _cases_on(session: Session, period: str) -> list[int]:
    """The cases still on the period: by their own period, or by an item still sealed under it."""
    with_items = select(SealedItem.case_id).where(SealedItem.key_period == period)
    return list(session.scalars(select(Case.id).where(or_(on_period(period), Case.id.in_(with_items)))
                                .order_by(Case.id)))


def _reseal_case(session: Session, sealer: Sealer, keys: PeriodKeys, hotline_private: X25519PrivateKey,
                 period: str, target: str, case_id: int, who: dict) -> int | None:
    """One case: switched (if it is still on the period) and its items under the period moved, a batch a
    transaction. Returns how many items moved, or None if there was nothing to do (done meanwhile)."""
    moved = 0
    while True:
        # The case's row first in every transaction, as the purge locks it (then its items): never the
        # other way round, which could deadlock with it.
        case = session.execute(select(Case.reference, Case.key_period, Case.created_at)
                               .where(Case.id == case_id).with_for_update()).first()
        if case is None:  # purged meanwhile
            session.rollback()
            return moved or None
        switched = case_period(case) == period
        if switched:
            # Not through the ORM object: its updated_at would move (onupdate), and the case's times are
            # its own (an anonymous case's are rounded; a settled case's clock may start from it).
            switch = session.execute(update(Case.__table__).where(Case.__table__.c.id == case_id).values(
                key_period=target, updated_at=Case.__table__.c.updated_at))
            if switch.rowcount != 1:  # purged between the two (SQLite locks nothing for the read)
                session.rollback()
                return moved or None
        batch = _next_batch(session, case_id, period)
        if not batch and not switched and moved == 0:
            session.rollback()  # nothing of this case was on the period any more
            return None
        for item in batch:
            _move(session, sealer, keys, hotline_private, item, period)
            moved += 1
        done = session.scalar(select(SealedItem.id).where(SealedItem.case_id == case_id,
                                                          SealedItem.key_period == period).limit(1)) is None
        if done:
            record(session, AuditAction.PERIOD_RESEALED, case_reference=case.reference,
                   detail={"from": period, "to": target if switched else case_period(case), "items": moved},
                   **who)
        session.commit()
        if done:
            return moved


def _next_batch(session: Session, case_id: int, period: str) -> list[SealedItem]:
    candidates = session.scalars(select(SealedItem).where(SealedItem.case_id == case_id,
                                                          SealedItem.key_period == period)
                                 .order_by(SealedItem.id).limit(BATCH_ITEMS).with_for_update()).all()
    batch, size = [], 0
    for item in candidates:
        if batch and size + item.size > BATCH_BYTES:
            break
        batch.append(item)
        size += item.size
    return batch


def _move(session: Session, sealer: Sealer, keys: PeriodKeys, hotline_private: X25519PrivateKey,
          item: SealedItem, period: str) -> None:
    """Open the item (under the period), seal it again under its case's period, and check that it opens."""
    try:
        data, owner = open_item_with_owner(session, hotline_private, sealer.blobs, item, keys)
        if owner is None:  # a v3 seal always names its owner; this is not one
            raise SealError("the item names no owner")
        sealer.reseal_item(session, item, data, owner)
        if item.key_period == period or open_item(session, hotline_private, sealer.blobs, item, owner, keys) != data:
            raise SealError("the item did not seal again as it should")
    except (SealError, BlobMissing) as error:
        session.rollback()
        raise ResealStopped(f"Item {item.id} ({item.kind}) does not open under period {period} "
                            f"({type(error).__name__}): it was left as it was, and so was the period's key. "
                            "What was moved before it stays moved.") from None


def _destroy_if_spent(session: Session, store: KeyStore, period: str, now: datetime, who: dict) -> tuple[bool, str | None]:
    """As the purge does (storage/retention.py destroy_spent_keys): destroyed if nothing uses the key and
    its month ended over PERIOD_KEY_GRACE ago. Returns (destroyed, why kept)."""
    if destroy_spent_keys(session, store, [period], now, **who):
        vacuum_key_store(store.db)
        return True, None
    if store.get(period) is None:  # a purge destroyed it a moment ago (and audited it)
        return True, None
    if period_in_use(session, period):
        session.rollback()
        return False, (f"still in use: something was sealed under {period} while this ran; run it again")
    session.rollback()
    until = period_bounds(period)[1] + PERIOD_KEY_GRACE
    return False, (f"its month ended less than {PERIOD_KEY_GRACE.days} days ago: the first purge after "
                   f"{until:%Y-%m-%d %H:%M} UTC destroys it")
