"""The audit trail: one hash-chained entry for every access and change, written in the same
transaction as what it records, so there is never an access without its entry (or the reverse).

Each entry's hash is SHA-256 over its own fields and the previous entry's hash. Editing, deleting or
reordering entries breaks the chain at that point; cutting off the newest entries is caught by the head
(sequence number and hash) that the console writes to its application log at intervals, which
`flask --app console audit verify --head SEQ:HASH` checks against. Entries hold ids, references and
actions, never report content (no note text, no search terms).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

# Appending lives in storage/audit.py, so the line (a caller heard or answered a question) and the workers
# (a purged case's tombstone) can append too.
from storage.audit import GENESIS_HASH, entry_hash, record, record_after_the_hour  # noqa: F401  (re-exported: the console's API)
from storage.models import AuditEntry, AuditHead

log = logging.getLogger("hotline.console.audit")


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_broken: int | None = None  # the sequence number of the first entry that does not fit
    problem: str | None = None


def verify_chain(session: Session, expected_head: tuple[int, str] | None = None) -> ChainCheck:
    """Walk the whole chain in order. expected_head is a (seq, hash) pair read from the application
    log: the chain must still contain exactly that entry."""
    head = session.get(AuditHead, 1)
    previous_hash, expected_seq, count = GENESIS_HASH, 1, 0
    entries: Iterable[AuditEntry] = session.execute(
        select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=1000)
    ).scalars()
    seen_expected = expected_head is None
    for entry in entries:
        count += 1
        if entry.id != expected_seq:
            return _broken(count, head, expected_seq, f"entry {expected_seq} is missing (the next is {entry.id})")
        if entry.prev_hash != previous_hash:
            return _broken(count, head, entry.id, f"entry {entry.id} does not follow entry {entry.id - 1}")
        recomputed = entry_hash(entry.id, entry.created_at, entry.actor_id, entry.actor, entry.action.value,
                                entry.case_reference, entry.target_user_id, entry.detail, entry.prev_hash)
        if recomputed != entry.hash:
            return _broken(count, head, entry.id, f"entry {entry.id} was changed after it was written")
        if expected_head is not None and entry.id == expected_head[0]:
            if entry.hash != expected_head[1]:
                return _broken(count, head, entry.id, f"entry {entry.id} differs from the head logged earlier")
            seen_expected = True
        previous_hash, expected_seq = entry.hash, expected_seq + 1
    if head is None or head.seq != expected_seq - 1 or head.hash != previous_hash:
        return _broken(count, head, expected_seq, "the chain's head does not match its last entry "
                       "(entries were removed from the end, or the head was edited)")
    if not seen_expected:
        return _broken(count, head, expected_seq,
                       f"entry {expected_head[0]}, logged earlier as the head, is no longer in the chain")
    return ChainCheck(True, count, head.seq, head.hash)


def _broken(count: int, head: AuditHead | None, seq: int, problem: str) -> ChainCheck:
    return ChainCheck(False, count, head.seq if head else 0, head.hash if head else "", seq, problem)


def current_head(session: Session) -> tuple[int, str]:
    head = session.get(AuditHead, 1)
    return (head.seq, head.hash) if head else (0, GENESIS_HASH)


class HeadLogger:
    """Writes the chain's head to the application log at intervals (and when it starts), so an insider
    who cuts off the newest entries, and rewrites the head to match, is caught against the log."""

    def __init__(self, db, interval_seconds: float):
        self.db, self.interval = db, interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[int, str] | None = None

    def log_head(self) -> None:
        try:
            with self.db.session() as session:
                head = current_head(session)
        except Exception as error:  # a database blip must not stop the console
            log.warning("could not read the audit head (%s)", type(error).__name__)
            return
        if head != self._last:
            log.info("audit head seq=%d hash=%s", head[0], head[1])
            self._last = head

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-head", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.log_head()
        while not self._stop.wait(self.interval):
            self.log_head()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
