"""A durable job queue in the hotline's own database.

The job row is the truth: a worker claims a job with a lease, and a job whose worker died (lease
expired) is claimed again. Celery, when used, only carries job ids to wake workers elsewhere.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from storage.models import Job, utcnow

STORE_RECORDING = "store-recording"
DISCARD_RECORDING = "discard-recording"
LEASE = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=1)


def enqueue(session: Session, kind: str, recording_id: int, *, reopen: bool = False) -> Job:
    """Once per (kind, recording): a repeated callback finds the job already there."""
    job = session.scalar(select(Job).where(Job.kind == kind, Job.recording_id == recording_id))
    if job is None:
        job = Job(kind=kind, recording_id=recording_id, state="queued", run_after=utcnow())
        session.add(job)
        session.flush()
    elif reopen and job.state in ("done", "failed"):
        job.state, job.attempts, job.run_after, job.last_error = "queued", 0, utcnow(), None
    return job


def _claimable(now: datetime):
    return or_(
        and_(Job.state == "queued", Job.run_after <= now),
        and_(Job.state == "running", Job.lease_until < now),
    )


def claim(session: Session, job_id: int | None = None, now: datetime | None = None, lease: timedelta = LEASE) -> Job | None:
    """Take the next due job (or the named one) and lease it. Safe with many workers on one database:
    the conditional update lets exactly one of them win each job."""
    now = now or utcnow()
    query = select(Job.id).where(_claimable(now)).order_by(Job.run_after, Job.id).limit(5)
    if job_id is not None:
        query = select(Job.id).where(Job.id == job_id, _claimable(now))
    for candidate in session.scalars(query).all():
        won = session.execute(
            update(Job)
            .where(Job.id == candidate, _claimable(now))
            .values(state="running", lease_until=now + lease, attempts=Job.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        session.commit()
        if won:
            return session.get(Job, candidate, populate_existing=True)
    return None


def renew_lease(session: Session, job_id: int, lease: timedelta = LEASE) -> None:
    session.execute(update(Job).where(Job.id == job_id, Job.state == "running").values(lease_until=utcnow() + lease))
    session.commit()


def complete(session: Session, job: Job) -> None:
    job.state, job.lease_until, job.last_error = "done", None, None


def retry_later(session: Session, job: Job, error: str, base_seconds: float, max_attempts: int) -> bool:
    """Back off exponentially; False once the job has used all its attempts (it is then 'failed')."""
    job.last_error, job.lease_until = error, None
    if job.attempts >= max_attempts:
        job.state = "failed"
        return False
    delay = min(timedelta(seconds=base_seconds * 2 ** (job.attempts - 1)), MAX_BACKOFF)
    job.state, job.run_after = "queued", utcnow() + delay
    return True


def fail(session: Session, job: Job, error: str) -> None:
    job.state, job.last_error, job.lease_until = "failed", error, None


def due_job_ids(session: Session, now: datetime | None = None) -> list[int]:
    return list(session.scalars(select(Job.id).where(_claimable(now or utcnow())).order_by(Job.id)))
