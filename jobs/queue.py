"""A durable job queue in the hotline's own database.

The job row is the truth: a worker claims a job with a lease, and a job whose worker died (lease
expired) is claimed again. Celery, when used, only carries job ids to wake workers elsewhere.

Each claim writes a fresh owner token. Only the holder of that token, while its lease runs, may
renew the lease, commit the job's work or finish the job: a worker that paused past its lease and
was taken over finds out at its next commit, or at the check before its next call to Twilio
(LeaseLost), and commits nothing. Such a check writes nothing while the lease has time left: on SQLite
every write transaction makes the webhooks wait for the one write lock.

A take's jobs run one at a time: a job is not claimed while another job of the same recording is
running on a live lease. Claims lock the recording's row first, so on PostgreSQL two workers claiming
two jobs of one take queue behind each other; SQLite runs one writer at a time anyway.

A job belongs to one take (recording_id) or, for Twilio's record of a call (jobs/calls.py), to one call
(call_id). A job that ends, done or given up, keeps no time finer than HOTLINE_ANONYMOUS_TIME.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, exists, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from jobs.owners import is_dead_here, local_prefix, new_owner
from storage.anonymity import coarse, stamp
from storage.models import Call, Job, JobKind, JobState, Recording, utcnow

STORE_RECORDING = JobKind.STORE_RECORDING
DISCARD_RECORDING = JobKind.DISCARD_RECORDING
DELETE_CALL = JobKind.DELETE_CALL
# A lease is always the caller's (Settings.job_lease_seconds, as Workshop.lease): no default here.
MAX_BACKOFF = timedelta(hours=1)


class LeaseLost(Exception):
    """This worker no longer holds its job (its lease ran out, or another worker took the job over)."""


@dataclass(frozen=True)
class QueuedJob:
    """What enqueue found or made; the row itself is not loaded (callers that want it: session.get)."""

    id: int
    state: JobState
    attempts: int
    run_after: datetime


def enqueue(session: Session, kind: JobKind, recording_id: int | None = None, *, call_id: int | None = None,
            reopen: bool = False, run_after: datetime | None = None) -> QueuedJob:
    """Once per (kind, recording), or (kind, call): a repeated callback finds the job already there.
    run_after: when a new job (or one queued and not tried yet) falls due; else now. reopen: a job that
    is done or gave up is queued again from the start.

    Plain SQL on the session's connection (the webhooks queue a job on every call), its times rounded
    as the line's flush would round a job's (storage/anonymity.py)."""
    kind = JobKind(kind)
    if (recording_id is None) == (call_id is None):
        raise ValueError("a job is about one recording or one call")
    statements = _enqueue_statements()
    session.flush()  # a take or call made through the ORM in this transaction is written first
    connection = session.connection()
    now, when = utcnow(), stamp(session)
    subject = {"recording_id": recording_id} if call_id is None else {"call_id": call_id}
    found = connection.execute(statements["by take" if call_id is None else "by call"], {"kind": kind, **subject}).first()
    if found is None:
        due = run_after or now
        made = connection.execute(statements["new"], {"kind": kind, "recording_id": recording_id, "call_id": call_id,
                                                      "state": JobState.QUEUED, "run_after": due,
                                                      "created_at": when, "updated_at": when})
        return QueuedJob(made.inserted_primary_key[0], JobState.QUEUED, 0, due)
    job = QueuedJob(found.id, JobState(found.state), found.attempts, found.run_after)
    if run_after is not None and job.attempts == 0 and job.state == JobState.QUEUED:
        connection.execute(statements["due"], {"job_id": job.id, "run_after": run_after, "updated_at": when})
        return replace(job, run_after=run_after)
    if reopen and job.state in (JobState.DONE, JobState.FAILED):
        # A call-record job's patience starts again (jobs/calls.py): its created_at is now's, rounded.
        connection.execute(statements["reopen"], {"job_id": job.id, "run_after": now, "created_at": when,
                                                  "updated_at": when})
        return QueuedJob(job.id, JobState.QUEUED, 0, now)
    return job


def bring_forward(session: Session, job: QueuedJob, moment: datetime) -> None:
    """A queued job falls due at `moment` if that is sooner (a take's job was waiting for its callback)."""
    if moment < job.run_after:
        session.connection().execute(_enqueue_statements()["due"], {"job_id": job.id, "run_after": moment,
                                                                    "updated_at": stamp(session)})


@functools.cache
def _enqueue_statements():
    jobs = Job.__table__
    found = select(jobs.c.id, jobs.c.state, jobs.c.attempts, jobs.c.run_after).where(jobs.c.kind == bindparam("kind"))
    by_id = jobs.c.id == bindparam("job_id")
    return {
        "by take": found.where(jobs.c.recording_id == bindparam("recording_id")),
        "by call": found.where(jobs.c.call_id == bindparam("call_id")),
        "new": insert(jobs),
        "due": update(jobs).where(by_id).values(run_after=bindparam("run_after"), updated_at=bindparam("updated_at")),
        "reopen": update(jobs).where(by_id).values(
            state=JobState.QUEUED, attempts=0, run_after=bindparam("run_after"), last_error=None, owner=None,
            lease_until=None, created_at=bindparam("created_at"), updated_at=bindparam("updated_at")),
    }


def _due(now: datetime):
    return or_(
        and_(Job.state == JobState.QUEUED, Job.run_after <= now),
        and_(Job.state == JobState.RUNNING, Job.lease_until < now),
    )


def _take_is_busy(now: datetime):
    """Another job of the same recording is running on a live lease."""
    other = aliased(Job)
    return exists().where(
        other.recording_id == Job.recording_id, other.id != Job.id,
        other.state == JobState.RUNNING, other.lease_until >= now,
    )


def _claimable(now: datetime):
    return and_(_due(now), ~_take_is_busy(now))


def _orphaned_here(session: Session, now: datetime, job_id: int | None) -> list[tuple[int, int | None, int | None, str]]:
    """Running jobs whose owner was a process on this machine that has since died (jobs/owners.py)."""
    prefix = local_prefix()
    if prefix is None:
        return []
    query = select(Job.id, Job.recording_id, Job.call_id, Job.owner).where(
        Job.state == JobState.RUNNING, Job.lease_until >= now, Job.owner.startswith(prefix, autoescape=True))
    if job_id is not None:
        query = query.where(Job.id == job_id)
    return [(id_, recording_id, call_id, owner) for id_, recording_id, call_id, owner in session.execute(query)
            if is_dead_here(owner)]


def claim(session: Session, job_id: int | None = None, now: datetime | None = None, *, lease: timedelta) -> Job | None:
    """Take the next due job (or the named one) and lease it. Safe with many workers on one database:
    the conditional update lets exactly one of them win each job. The returned job's `owner` is this
    claim's token. A job whose owner died on this machine is taken over at once, lease or not."""
    now = now or utcnow()
    query = select(Job.id, Job.recording_id, Job.call_id).where(_claimable(now)).order_by(Job.run_after, Job.id).limit(5)
    if job_id is not None:
        query = select(Job.id, Job.recording_id, Job.call_id).where(Job.id == job_id, _claimable(now))
    candidates = _orphaned_here(session, now, job_id)
    candidates += [(id_, recording_id, call_id, None) for id_, recording_id, call_id in session.execute(query).all()]
    for candidate, recording_id, call_id, dead_owner in candidates:
        # Lock the take (or the call) first (PostgreSQL): a rival claiming a sibling job waits, then sees ours running.
        if recording_id is not None:
            session.execute(select(Recording.id).where(Recording.id == recording_id).with_for_update())
        else:
            session.execute(select(Call.id).where(Call.id == call_id).with_for_update())
        owner = new_owner()
        condition = _claimable(now) if dead_owner is None else and_(
            Job.state == JobState.RUNNING, Job.owner == dead_owner, ~_take_is_busy(now))
        won = session.execute(
            update(Job)
            .where(Job.id == candidate, condition)
            .values(state=JobState.RUNNING, owner=owner, lease_until=now + lease, attempts=Job.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        session.commit()
        if won:
            return session.get(Job, candidate, populate_existing=True)
    return None


def _held(job_id: int, owner: str, now: datetime):
    """`owner` still holds the job, and its lease has not run out."""
    return and_(Job.id == job_id, Job.owner == owner, Job.state == JobState.RUNNING, Job.lease_until >= now)


def hold(session: Session, job_id: int, owner: str, lease: timedelta, now: datetime | None = None) -> bool:
    """In the caller's transaction: extend the lease if `owner` still holds it and it has not run out.
    The row stays locked until that transaction ends, so what it commits is committed as the holder."""
    now = now or utcnow()
    return session.execute(
        update(Job)
        .where(_held(job_id, owner, now))
        .values(lease_until=now + lease)
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def renew_lease(session: Session, job_id: int, owner: str, lease: timedelta) -> bool:
    """False once `owner` has lost the job: the lease of whoever took it over is left alone."""
    held = hold(session, job_id, owner, lease)
    session.commit()
    return held


class Claim:
    """A worker's hold on one job: every commit of the job's work goes through it (LeaseLost, with
    nothing committed, once the job is no longer this worker's)."""

    def __init__(self, job_id: int, owner: str, lease: timedelta):
        self.job_id, self.owner, self.lease = job_id, owner, lease
        self.finished = False  # finish() was called: from then on the job is done, or someone else's

    def commit(self, session: Session) -> None:
        """Commit the job's work, renewing the lease."""
        if not hold(session, self.job_id, self.owner, self.lease):
            self._lost(session)
        session.commit()

    def check(self, session: Session) -> None:
        """Before work outside the database (a download, a delete at Twilio): is the job still this
        worker's? Then end the transaction. Nothing is written unless less than half of the lease is
        left: then it is renewed, so a long download does not start on a lease about to run out.

        Work the transaction already holds is committed with it, as the holder's, never dropped: its row
        in jobs is read FOR UPDATE (PostgreSQL), and on SQLite a transaction that wrote holds the write
        lock, so the job cannot change hands before the commit."""
        now = utcnow()
        session.flush()
        held_until = session.scalar(select(Job.lease_until).where(_held(self.job_id, self.owner, now)).with_for_update())
        if held_until is None:
            self._lost(session)
        if held_until - now < self.lease / 2:
            self.commit(session)
        else:
            session.commit()

    def finish(self, session: Session, precision: str) -> None:
        """Commit the job's last work with the job marked done: one transaction. Its guard is complete()'s
        (still this worker's, even on a lease run out: nobody else has started it then)."""
        self.finished = True
        if not complete(session, self.job_id, self.owner, precision):
            self._lost(session)
        session.commit()

    def _lost(self, session: Session) -> None:
        session.rollback()
        raise LeaseLost(f"job {self.job_id} is no longer held by this worker")


def _ended(session: Session, job_id: int, precision: str) -> dict:
    """The times of a job that ends, rounded: nothing in it then says when its call was."""
    now = coarse(utcnow(), precision)
    created = session.scalar(select(Job.created_at).where(Job.id == job_id))
    return dict(lease_until=None, updated_at=now, run_after=now, created_at=coarse(created or now, precision))


def complete(session: Session, job_id: int, owner: str, precision: str = "hour") -> bool:
    """Mark the job done, unless another worker has taken it over (then it is theirs to finish)."""
    return session.execute(
        update(Job)
        .where(Job.id == job_id, Job.owner == owner, Job.state == JobState.RUNNING)
        .values(state=JobState.DONE, last_error=None, **_ended(session, job_id, precision))
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def retry_later(session: Session, job_id: int, owner: str, error: str, base_seconds: float, max_attempts: int | None, *,
                give_up_after: timedelta | None = None, max_backoff: timedelta = MAX_BACKOFF,
                precision: str = "hour") -> bool | None:
    """Back off exponentially, to at most max_backoff. True: queued again; False: all attempts used (or,
    with give_up_after, that long has passed since the job was made), the job is 'failed'; None: another
    worker holds the job now, so nothing was changed."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.owner != owner or job.state != JobState.RUNNING:
        return None
    now = utcnow()
    used_up = max_attempts is not None and job.attempts >= max_attempts
    if used_up or (give_up_after is not None and now - job.created_at >= give_up_after):
        values = dict(state=JobState.FAILED, last_error=error, **_ended(session, job_id, precision))
    else:
        delay = min(timedelta(seconds=base_seconds * 2 ** min(job.attempts - 1, 40)), max_backoff)
        values = dict(state=JobState.QUEUED, last_error=error, lease_until=None, run_after=now + delay, updated_at=now)
    won = session.execute(
        update(Job).where(Job.id == job_id, Job.owner == owner, Job.state == JobState.RUNNING).values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not won:
        return None
    return values["state"] is JobState.QUEUED


def due_job_ids(session: Session, now: datetime | None = None, recording_id: int | None = None) -> list[int]:
    query = select(Job.id).where(_claimable(now or utcnow())).order_by(Job.id)
    if recording_id is not None:
        query = query.where(Job.recording_id == recording_id)
    return list(session.scalars(query))


def failed_jobs(session: Session) -> list[Job]:
    """Jobs that used every attempt and wait for an operator (`flask --app app jobs retry`)."""
    return list(session.scalars(select(Job).where(Job.state == JobState.FAILED).order_by(Job.id)))
