"""Attaching sealed items to a take, with the caller's keep/discard decision checked at that moment.

A caller can press 2 ("delete it and record it again") while a worker is transcribing the take. The
decision is therefore re-checked in the very statement that attaches anything: one conditional UPDATE
of the take's row, which takes the row's write lock. A discard committed a moment earlier is seen and
nothing is attached; a discard arriving a moment later waits for this transaction, and its discard job
then destroys what was attached. This holds on SQLite (where SELECT ... FOR UPDATE does nothing) as on
PostgreSQL.
"""
from __future__ import annotations

import functools
from typing import Callable

from sqlalchemy import BindParameter, bindparam, func, select, update
from sqlalchemy.orm import Session

from storage.cases import Sealer
from storage.models import Recording, SealedItem, TakeDecision

KEEP, DISCARD = TakeDecision.KEEP, TakeDecision.DISCARD


def set_if_kept(session: Session, recording_id: int, expect: dict | None = None, **values) -> bool:
    """Set columns of a kept take; with `expect`, only while those columns still hold the given values
    (compare-and-swap, so two writers cannot both attach). False: nothing was changed."""
    conditions = [Recording.id == recording_id, Recording.decision == KEEP]
    for name, value in (expect or {}).items():
        column = getattr(Recording, name)
        conditions.append(column.is_(None) if value is None else column == value)
    result = session.execute(
        update(Recording).where(*conditions).values(**values).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def attach_sealed(
    session: Session, sealer: Sealer, item: SealedItem, recording_id: int, commit: Callable[[], None],
    expect: dict | None = None, **values,
) -> bool:
    """Attach a just-sealed item (values name it, e.g. transcript_item_id=item.id) and commit, or drop it:
    True once committed; False if the take was discarded (or `expect` no longer holds). An exception
    from commit (e.g. LeaseLost) also drops the item, then propagates."""
    try:
        if set_if_kept(session, recording_id, expect, **values):
            commit()
            return True
    except BaseException:
        drop_unattached(session, sealer, item.blob_key)
        raise
    drop_unattached(session, sealer, item.blob_key)
    return False


def drop_unattached(session: Session, sealer: Sealer, blob_key: str) -> None:
    """Undo a sealed item that was never committed: the rollback removes its rows, and a folder blob
    store's file (written before the commit) is removed too."""
    session.rollback()
    try:
        sealer.blobs.delete(session, blob_key)
    except Exception:  # the database's copy went with the rollback; a stray file holds only ciphertext
        pass
    session.rollback()


def next_position(session: Session, case_id: int) -> int:
    """A new take's place in its case: 1, 2, ... Takes are ordered by it, not by id (random) or by a time
    that may be rounded to the hour (storage/anonymity.py)."""
    return session.connection().execute(_next_position(), {"case_id": case_id}).scalar()


def position_after_last(case_id: BindParameter):
    """next_position as a scalar subquery, for an INSERT that finds its take's place itself (ivr/desk.py)."""
    return select(func.coalesce(func.max(Recording.position), 0) + 1).where(Recording.case_id == case_id)


@functools.cache
def _next_position():
    # Built once, run on the session's connection: takes found at Twilio by the sweep ask (jobs/sweep.py).
    return position_after_last(bindparam("case_id"))
