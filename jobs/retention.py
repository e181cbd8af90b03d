"""The scheduled purge: every HOTLINE_PURGE_SECONDS each worker deletes the cases that are due
(storage/retention.py) and then destroys the period keys nothing uses any more (storage/keystore.py).

A schedule, like the Twilio sweep, rather than a job row per case: what is due follows from the cases
themselves, so there is nothing to lose if a worker dies mid-purge; the next run finds what is still due.
Each case is purged in a transaction of its own, so one that fails (or that a supervisor put on hold a
moment earlier, which the purge re-checks under the case's lock) stops nothing else. Several workers
purging at once is harmless: the loser finds the case gone or locked and moves on.

A period key is destroyed after its cases are committed gone, and the destruction audited after that, so a
crash between the two leaves a key that the next run destroys (and audits) then.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from settings import RetentionPolicy
from storage.audit import record
from storage.blobs import BlobStore
from storage.db import Database
from storage.keystore import KeyStore
from storage.models import AuditAction
from storage.retention import PurgeRefused, due_cases, purge_case, spent_periods

log = logging.getLogger("hotline.retention")


def purge(db: Database, blobs: BlobStore, periods: KeyStore | None, policy: RetentionPolicy,
          now: datetime | None = None) -> Counter:
    """One run; returns what it did, e.g. Counter(purged=3, **{"period keys destroyed": 1})."""
    done: Counter = Counter()
    with db.session() as session:
        due = [row.case_id for row in due_cases(session, policy, now)]
    for case_id in due:
        with db.session() as session:
            try:
                purge_case(session, blobs, case_id, policy, now)
                session.commit()
                done["purged"] += 1
            except PurgeRefused:
                session.rollback()
                done["skipped"] += 1
            except SQLAlchemyError as error:  # e.g. a lock timeout: the next run tries again
                session.rollback()
                done["failed"] += 1
                log.warning("could not purge case id %s: %s", case_id, type(error).__name__)
    if periods is not None:
        with db.session() as session:
            spent = spent_periods(session, [row.period for row in periods.periods()], now)
        for period in spent:
            if periods.destroy(period):
                with db.session() as session:
                    record(session, AuditAction.PERIOD_KEY_DESTROYED, actor_label="system", detail={"period": period})
                    session.commit()
                done["period keys destroyed"] += 1
    if done["purged"] or done["period keys destroyed"] or done["failed"]:
        log.info("retention: %s", ", ".join(f"{count} {what}" for what, count in sorted(done.items())))
    return done


def purge_for(workshop, now: datetime | None = None) -> Counter:
    sealer = workshop.sealer
    return purge(workshop.db, sealer.blobs, sealer.periods, workshop.settings.retention, now)
