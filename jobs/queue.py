"""A durable job queue in the hotline's own database.

The job row is the truth: a worker claims a job with a lease, and a job whose worker died (lease
expired) is claimed again. Celery, when used, only carries job ids to wake workers elsewhere.

Each claim writes a fresh owner token. Only the holder of that token, while its lease runs, may
renew the lease, commit the job's work or finish the job: a worker that paused past its lease and
was taken over finds out at its next commit (LeaseLost) and commits nothing.

A take's jobs run one at a time: a job is not claimed while another job of the same recording is
running on a live lease. Claims lock the recording's row first, so on PostgreSQL two workers claiming
two jobs of one take queue behind each other; SQLite runs one writer at a time anyway.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from jobs.owners import is_dead_here, local_prefix, new_owner
from storage.models import Job, Recording, utcnow

STORE_RECORDING = "store-recording"
DISCARD_RECORDING = "discard-recording"
LEASE = timedelta(seconds=30)  # the default of HOTLINE_JOB_LEASE_SECONDS; renewed every third of it
MAX_BACKOFF = timedelta(hours=1)


class LeaseLost(Exception):
    """This worker no longer holds its job (its lease ran out, or another worker took the job over)."""


def enqueue(session: Session, kind: str, recording_id: int, *, reopen: bool = False) -> Job:
    """Once per (kind, recording): a repeated callback finds the job already there."""
    job = session.scalar(select(Job).where(Job.kind == kind, Job.recording_id == recording_id))
    if job is None:
        job = Job(kind=kind, recording_id=recording_id, state="queued", run_after=utcnow())
        session.add(job)
        session.flush()
    elif reopen and job.state in ("done", "failed"):
        job.state, job.attempts, job.run_after, job.last_error = "queued", 0, utcnow(), None
        job.owner, job.lease_until = None, None
    return job


def _due(now: datetime):
    return or_(
        and_(Job.state == "queued", Job.run_after <= now),
        and_(Job.state == "running", Job.lease_until < now),
    )


def _take_is_busy(now: datetime):
    """Another job of the same recording is running on a live lease."""
    other = aliased(Job)
    return exists().where(
        other.recording_id == Job.recording_id, other.id != Job.id,
        other.state == "running", other.lease_until >= now,
    )


def _claimable(now: datetime):
    return and_(_due(now), ~_take_is_busy(now))


def _orphaned_here(session: Session, now: datetime, job_id: int | None) -> list[tuple[int, int, str]]:
    """Running jobs whose owner was a process on this machine that has since died (jobs/owners.py)."""
    prefix = local_prefix()
    if prefix is None:
        return []
    query = select(Job.id, Job.recording_id, Job.owner).where(
        Job.state == "running", Job.lease_until >= now, Job.owner.startswith(prefix, autoescape=True))
    if job_id is not None:
        query = query.where(Job.id == job_id)
    return [(id_, recording_id, owner) for id_, recording_id, owner in session.execute(query) if is_dead_here(owner)]


def claim(session: Session, job_id: int | None = None, now: datetime | None = None, lease: timedelta = LEASE) -> Job | None:
    """Take the next due job (or the named one) and lease it. Safe with many workers on one database:
    the conditional update lets exactly one of them win each job. The returned job's `owner` is this
    claim's token. A job whose owner died on this machine is taken over at once, lease or not."""
    now = now or utcnow()
    query = select(Job.id, Job.recording_id).where(_claimable(now)).order_by(Job.run_after, Job.id).limit(5)
    if job_id is not None:
        query = select(Job.id, Job.recording_id).where(Job.id == job_id, _claimable(now))
    candidates = _orphaned_here(session, now, job_id)
    candidates += [(id_, recording_id, None) for id_, recording_id in session.execute(query).all()]
    for candidate, recording_id, dead_owner in candidates:
        # Lock the take first (PostgreSQL): a rival claiming a sibling job waits, then sees ours running.
        session.execute(select(Recording.id).where(Recording.id == recording_id).with_for_update())
        owner = new_owner()
        condition = _claimable(now) if dead_owner is None else and_(
            Job.state == "running", Job.owner == dead_owner, ~_take_is_busy(now))
        won = session.execute(
            update(Job)
            .where(Job.id == candidate, condition)
            .values(state="running", owner=owner, lease_until=now + lease, attempts=Job.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        session.commit()
        if won:
            return session.get(Job, candidate, populate_existing=True)
    return None


def hold(session: Session, job_id: int, owner: str, lease: timedelta = LEASE, now: datetime | None = None) -> bool:
    """In the caller's transaction: extend the lease if `owner` still holds it and it has not run out.
    The row stays locked until that transaction ends, so what it commits is committed as the holder."""
    now = now or utcnow()
    return session.execute(
        update(Job)
        .where(Job.id == job_id, Job.owner == owner, Job.state == "running", Job.lease_until >= now)
        .values(lease_until=now + lease)
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def renew_lease(session: Session, job_id: int, owner: str, lease: timedelta = LEASE) -> bool:
    """False once `owner` has lost the job: the lease of whoever took it over is left alone."""
    held = hold(session, job_id, owner, lease)
    session.commit()
    return held


class Claim:
    """A worker's hold on one job: every commit of the job's work goes through commit()."""

    def __init__(self, job_id: int, owner: str, lease: timedelta):
        self.job_id, self.owner, self.lease = job_id, owner, lease

    def commit(self, session: Session) -> None:
        if not hold(session, self.job_id, self.owner, self.lease):
            session.rollback()
            raise LeaseLost(f"job {self.job_id} is no longer held by this worker")
        session.commit()


def complete(session: Session, job_id: int, owner: str) -> bool:
    """Mark the job done, unless another worker has taken it over (then it is theirs to finish)."""
    return session.execute(
        update(Job)
        .where(Job.id == job_id, Job.owner == owner, Job.state == "running")
        .values(state="done", lease_until=None, last_error=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def retry_later(session: Session, job_id: int, owner: str, error: str, base_seconds: float, max_attempts: int) -> bool | None:
    """Back off exponentially. True: queued again; False: all attempts used, the job is 'failed';
    None: another worker holds the job now, so nothing was changed."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.owner != owner or job.state != "running":
        return None
    now = utcnow()
    if job.attempts >= max_attempts:
        values = dict(state="failed", last_error=error, lease_until=None, updated_at=now)
    else:
        delay = min(timedelta(seconds=base_seconds * 2 ** (job.attempts - 1)), MAX_BACKOFF)
        values = dict(state="queued", last_error=error, lease_until=None, run_after=now + delay, updated_at=now)
    won = session.execute(
        update(Job).where(Job.id == job_id, Job.owner == owner, Job.state == "running").values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not won:
        return None
    return values["state"] == "queued"


def due_job_ids(session: Session, now: datetime | None = None, recording_id: int | None = None) -> list[int]:
    query = select(Job.id).where(_claimable(now or utcnow())).order_by(Job.id)
    if recording_id is not None:
        query = query.where(Job.recording_id == recording_id)
    return list(session.scalars(query))


def failed_jobs(session: Session) -> list[Job]:
    """Jobs that used every attempt and wait for an operator (`flask --app app jobs retry`)."""
    return list(session.scalars(select(Job).where(Job.state == "failed").order_by(Job.id)))
