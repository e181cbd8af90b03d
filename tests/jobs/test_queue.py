"""Queueing a job (jobs/queue.py enqueue): once per kind and call (or take); a repeated callback finds
the job there, and moves it (not tried yet) or reopens it (ended, when asked)."""
from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ivr.desk import SqlCallDesk
from jobs.queue import DELETE_CALL, enqueue
from storage.models import Call, Job, JobState, utcnow


@pytest.fixture
def session(hotline):
    with hotline.db.session() as session:
        yield session


@pytest.fixture
def call_id(session, hotline, settings) -> int:
    SqlCallDesk(session, hotline.sealer, settings.pin_key).start_call("CA" + secrets.token_hex(16))
    session.commit()
    return session.scalar(select(Call.id))


def jobs_of(session, call_id: int) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.call_id == call_id)))


def test_the_first_callback_queues_the_job_and_a_repeated_one_finds_it(session, call_id):
    first = enqueue(session, DELETE_CALL, call_id=call_id)
    session.commit()
    again = enqueue(session, DELETE_CALL, call_id=call_id)
    session.commit()
    assert again == first and first.state == JobState.QUEUED and first.attempts == 0
    assert [job.id for job in jobs_of(session, call_id)] == [first.id]


def test_a_repeated_callback_moves_a_job_not_tried_yet(session, call_id):
    first = enqueue(session, DELETE_CALL, call_id=call_id, run_after=utcnow() + timedelta(hours=1))
    session.commit()
    sooner = utcnow() + timedelta(minutes=1)
    moved = enqueue(session, DELETE_CALL, call_id=call_id, run_after=sooner)
    session.commit()
    assert moved.id == first.id and moved.run_after == sooner
    assert session.scalar(select(Job.run_after).where(Job.id == first.id)).replace(tzinfo=None) == \
        sooner.replace(tzinfo=None)


def test_a_job_that_ended_is_reopened_only_when_asked(session, call_id):
    first = enqueue(session, DELETE_CALL, call_id=call_id)
    session.get(Job, first.id).state = JobState.DONE
    session.commit()
    assert enqueue(session, DELETE_CALL, call_id=call_id).state == JobState.DONE
    reopened = enqueue(session, DELETE_CALL, call_id=call_id, reopen=True)
    session.commit()
    assert reopened.id == first.id and reopened.state == JobState.QUEUED
    assert session.scalar(select(func.count()).select_from(Job)) == 1
