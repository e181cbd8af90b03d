"""The scheduled purge: every HOTLINE_PURGE_SECONDS each worker deletes the cases that are due
(storage/retention.py) and then destroys the period keys nothing uses any more (storage/keystore.py).

A schedule, like the Twilio sweep, rather than a job row per case: what is due follows from the cases
themselves, so there is nothing to lose if a worker dies mid-purge; the next run finds what is still due.
Each case is purged in a transaction of its own, so one that fails (or that a supervisor put on hold a
moment earlier, which the purge re-checks under the case's lock) stops nothing else. Several workers
purging at once is harmless: the loser finds the case gone or locked and moves on.

A period key is destroyed after its cases are committed gone, and the destruction audited after that, so a
crash between the two leaves a key that the next run destroys (and audits) then.

Each run then rewrites the SQLite tables that hold Twilio ids, if ids were erased or cases purged since the
last rewrite and that was HOTLINE_COMPACT_SECONDS ago or more (storage/compaction.py): `secure_delete`
alone can leave old copies of erased ids in the file. The key store is VACUUMed as soon as a key is
destroyed (it is small, and its write-ahead log would otherwise keep the destroyed key's bytes).
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from settings import RetentionPolicy
from storage.blobs import BlobStore
from storage.compaction import compact_if_due, has_log, vacuum_key_store
from storage.db import Database
from storage.keystore import KeyStore
from storage.retention import PurgeRefused, destroy_spent_keys, due_cases, purge_case

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
            destroyed = destroy_spent_keys(session, periods, [row.period for row in periods.periods()], now,
                                           actor_label="system")
        if destroyed:
            done["period keys destroyed"] += len(destroyed)
    if done["purged"] or done["period keys destroyed"] or done["failed"]:
        log.info("retention: %s", ", ".join(f"{count} {what}" for what, count in sorted(done.items())))
    return done


def purge_for(workshop, now: datetime | None = None) -> Counter:
    """The workers' scheduled run: the purge, then the rewrite of the id tables if it is due (`compacted`)."""
    sealer = workshop.sealer
    done = purge(workshop.db, sealer.blobs, sealer.periods, workshop.settings.retention, now)
    # The key store's write-ahead log keeps a destroyed key's bytes until it is emptied: VACUUM the store
    # (small) after a destruction, and at any run that finds its log holding something (a reader kept it).
    if sealer.periods is not None and (done["period keys destroyed"] or has_log(sealer.periods.db)):
        vacuum_key_store(sealer.periods.db)  # if it cannot, its log stays, so the next run tries again
    if compact_if_due(workshop.db, workshop.settings.compact_seconds).outcome == "compacted":
        done["compacted"] += 1
    return done
