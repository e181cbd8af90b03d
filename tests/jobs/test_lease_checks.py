"""Before each call to Twilio (the download, the delete) a worker checks that its job is still its own:
one that lost it (taken over by another worker, or its lease run out while it paused) stops there, asks
Twilio nothing and commits nothing. The job's last commit, the take noted deleted at Twilio with the job
done, is guarded the same way; a job that lost it runs again, and Twilio's 404 then means done."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from jobs import queue
from jobs.recording import run_job, store_recording
from storage.models import Job, Recording, SealedItem, utcnow
from tests.support.audio import phone_wav
from tests.support.processes import wait_until
from tests.support.takes import recorded_take

NOTED = "noted in the transaction the check ends"


def _claim(hotline) -> queue.Claim:
    """A worker claims the due job, as run_job does."""
    with hotline.db.session() as session:
        job = queue.claim(session, lease=hotline.workshop.lease)
        return queue.Claim(job.id, job.owner, hotline.workshop.lease)


def _lose(hotline, claim: queue.Claim, how: str) -> None:
    """The worker pauses past its lease; another worker may take the job over meanwhile."""
    with hotline.db.session() as session:
        session.execute(update(Job).where(Job.id == claim.job_id).values(lease_until=utcnow() - timedelta(seconds=1)))
        session.commit()
        if how == "taken over":
            assert queue.claim(session, claim.job_id, lease=hotline.workshop.lease).owner != claim.owner


def _store_as(hotline, claim: queue.Claim, recording_id: int) -> None:
    """The store job's stages, their commits and checks going through `claim` as under run_job."""
    with hotline.db.session() as session:
        store_recording(hotline.workshop, session, recording_id, lambda: claim.commit(session),
                        check=lambda: claim.check(session), finish=lambda: claim.finish(session, "hour"))


def _job(hotline, job_id: int) -> Job:
    with hotline.db.session() as session:
        return session.get(Job, job_id)


@pytest.mark.parametrize("how", ["taken over", "run out"])
def test_a_worker_that_lost_its_job_stops_before_the_download(hotline, fake_twilio, how):
    recording_id, sid = recorded_take(hotline, fake_twilio, phone_wav(1.0))
    claim = _claim(hotline)
    _lose(hotline, claim, how)
    job_before = _job(hotline, claim.job_id)

    with pytest.raises(queue.LeaseLost):
        _store_as(hotline, claim, recording_id)

    assert fake_twilio.requests("GET", sid) == []
    job = _job(hotline, claim.job_id)
    assert (job.owner, job.state, job.lease_until) == (job_before.owner, "running", job_before.lease_until)


@pytest.mark.parametrize("how", ["taken over", "run out"])
def test_a_worker_that_lost_its_job_stops_before_the_delete_at_twilio(hotline, fake_twilio, how):
    recording_id, sid = recorded_take(hotline, fake_twilio, phone_wav(1.0))
    fake_twilio.fail_next("DELETE", sid, status=503)
    run_job(hotline.workshop)  # stored; Twilio's copy waits for the retry
    with hotline.db.session() as session:
        session.execute(update(Job).values(run_after=utcnow()))
        session.commit()
    claim = _claim(hotline)
    _lose(hotline, claim, how)

    with pytest.raises(queue.LeaseLost):
        _store_as(hotline, claim, recording_id)

    assert len(fake_twilio.requests("DELETE", sid)) == 1 and sid in fake_twilio.recordings
    with hotline.db.session() as session:
        assert not session.get(Recording, recording_id).deleted_at_twilio
    assert _job(hotline, claim.job_id).state == "running"


def _note_in_the_transaction(session, recording_id: int) -> None:
    """Work a stage left uncommitted: an ORM change and a Core UPDATE."""
    session.get(Recording, recording_id).transcription_error = NOTED
    session.execute(update(Recording).where(Recording.id == recording_id).values(transcription_attempts=7))


def _noted(hotline, recording_id: int) -> tuple:
    with hotline.db.session() as session:
        return session.execute(select(Recording.transcription_error, Recording.transcription_attempts)
                               .where(Recording.id == recording_id)).one()


def test_a_check_commits_what_its_transaction_holds_as_the_job_s_holder(hotline, fake_twilio):
    recording_id, _ = recorded_take(hotline, fake_twilio, phone_wav(0.5))
    claim = _claim(hotline)
    with hotline.db.session() as session:
        _note_in_the_transaction(session, recording_id)
        claim.check(session)
    assert tuple(_noted(hotline, recording_id)) == (NOTED, 7)


@pytest.mark.parametrize("how", ["taken over", "run out"])
def test_a_check_of_a_lost_job_commits_nothing_its_transaction_holds(hotline, fake_twilio, how):
    recording_id, _ = recorded_take(hotline, fake_twilio, phone_wav(0.5))
    claim = _claim(hotline)
    _lose(hotline, claim, how)
    with hotline.db.session() as session:
        _note_in_the_transaction(session, recording_id)
        with pytest.raises(queue.LeaseLost):
            claim.check(session)
    assert tuple(_noted(hotline, recording_id)) == (None, 0)


def _stored(hotline, recording_id: int) -> bool:
    with hotline.db.session() as session:
        return session.scalar(select(Recording.audio_item_id).where(Recording.id == recording_id)) is not None


def test_a_job_lost_during_the_delete_at_twilio_commits_nothing_and_its_next_run_finds_it_done(hotline, fake_twilio):
    """The same state as a worker that died between Twilio's delete and its last commit: Twilio has
    deleted the recording, our row says it has not. The job runs again and deletes again: 404, done."""
    recording_id, sid = recorded_take(hotline, fake_twilio, phone_wav(1.0))
    fake_twilio.delay_next("DELETE", sid, seconds=3.0)
    first = threading.Thread(target=run_job, args=(hotline.workshop,), daemon=True)
    first.start()
    assert wait_until(lambda: _stored(hotline, recording_id), timeout=20)
    time.sleep(1.0)  # the first worker has checked its job and waits on Twilio's answer to its delete

    with hotline.db.session() as session:  # it looks dead: a second worker takes over, then dies itself
        session.execute(update(Job).values(lease_until=utcnow() - timedelta(seconds=1)))
        session.commit()
        second = queue.claim(session, lease=hotline.workshop.lease)
        job_id, second_owner = second.id, second.owner
    first.join(30)

    assert sid not in fake_twilio.recordings
    with hotline.db.session() as session:
        assert not session.get(Recording, recording_id).deleted_at_twilio
        job = session.get(Job, job_id)
        assert (job.state, job.owner) == ("running", second_owner)
        job.lease_until = utcnow() - timedelta(seconds=1)
        session.commit()

    assert run_job(hotline.workshop) == job_id
    assert [request.status for request in fake_twilio.requests("DELETE", sid)] == [204, 404]
    with hotline.db.session() as session:
        assert session.get(Recording, recording_id).deleted_at_twilio
        assert session.get(Job, job_id).state == "done"
        assert len(session.scalars(select(SealedItem).where(SealedItem.kind == "recording")).all()) == 1
