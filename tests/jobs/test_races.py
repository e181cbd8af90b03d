"""Two workers, a caller who changes their mind, and a worker that pauses for too long.

The workers here are threads on one database (SQLite and PostgreSQL, like every database test); the
speech model is a stand-in that can be held mid-transcription, which is where real races happen.
"""
from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

from sqlalchemy import select, update

from console.keys import open_item
from ivr.desk import SqlCallDesk
from jobs import queue
from jobs.recording import run_job
from jobs.worker import run_until_idle
from settings import Settings
from storage.models import Job, Recording, SealedItem, utcnow
from tests.support.audio import phone_wav
from tests.support.takes import recorded_take
from tests.support.transcribers import FakeTranscriber
from transcription.recognizer import Transcript


def _start_worker(workshop) -> threading.Thread:
    thread = threading.Thread(target=run_job, args=(workshop,), daemon=True)
    thread.start()
    return thread


def _caller_presses_2(hotline, recording_id: int, sid: str) -> None:
    """"To delete it and record it again, press 2": the webhook commits the decision and a discard job."""
    with hotline.db.session() as session:
        call_sid = session.get(Recording, recording_id).call_sid
        SqlCallDesk(session, hotline.sealer, hotline.settings.secret_key).discard_take(call_sid, sid)
        session.commit()


def _kinds(hotline) -> list[str]:
    with hotline.db.session() as session:
        return sorted(session.scalars(select(SealedItem.kind)))


def test_a_take_deleted_while_a_worker_transcribes_it_keeps_no_transcript(hotline, fake_twilio):
    held = FakeTranscriber(hold=True)
    hotline.workshop.transcriber = held
    recording_id, sid = recorded_take(hotline, fake_twilio, phone_wav(1.0))
    first = _start_worker(hotline.workshop)
    assert held.started.wait(20), "the store job never began transcribing"

    _caller_presses_2(hotline, recording_id, sid)
    run_job(hotline.workshop)  # a second worker takes whatever is due meanwhile
    held.release.set()
    first.join(30)
    run_until_idle(hotline.workshop)

    assert _kinds(hotline) == []
    with hotline.db.session() as session:
        recording = session.get(Recording, recording_id)
        assert recording.audio_item_id is None and recording.transcript_item_id is None
        assert recording.deleted_at_twilio
        assert {job.state for job in session.scalars(select(Job))} == {"done"}
    assert sid not in fake_twilio.recordings


def test_only_one_job_of_a_take_runs_at_a_time(hotline, fake_twilio):
    held = FakeTranscriber(hold=True)
    hotline.workshop.transcriber = held
    recording_id, sid = recorded_take(hotline, fake_twilio, phone_wav(1.0))
    first = _start_worker(hotline.workshop)
    assert held.started.wait(20)
    _caller_presses_2(hotline, recording_id, sid)
    try:
        assert run_job(hotline.workshop) is None  # the discard job waits for the store job
        with hotline.db.session() as session:
            discard = session.scalar(select(Job).where(Job.kind == queue.DISCARD_RECORDING))
            assert discard.state == "queued"
            assert queue.due_job_ids(session) == []
            assert queue.claim(session, discard.id, lease=hotline.workshop.lease) is None
    finally:
        held.release.set()
        first.join(30)
    assert run_until_idle(hotline.workshop) <= 1
    assert _kinds(hotline) == []


def test_a_store_job_that_finds_its_take_deleted_commits_no_transcript(hotline, fake_twilio):
    """The decision is checked again in the transaction that would attach the transcript: a transcript
    of a deleted take must not exist even until the discard job runs (`decrypt` would write it out)."""
    held = FakeTranscriber(hold=True)
    hotline.workshop.transcriber = held
    recording_id, sid = recorded_take(hotline, fake_twilio, phone_wav(1.0))
    first = _start_worker(hotline.workshop)
    assert held.started.wait(20)
    _caller_presses_2(hotline, recording_id, sid)
    held.release.set()
    first.join(30)

    assert "transcript" not in _kinds(hotline)
    run_until_idle(hotline.workshop)
    assert _kinds(hotline) == [] and sid not in fake_twilio.recordings


def test_a_worker_whose_job_was_taken_over_commits_nothing(hotline, fake_twilio, private_key):
    slow = FakeTranscriber("words of the worker that paused", hold=True)
    hotline.workshop.transcriber = slow
    recording_id, sid = recorded_take(hotline, fake_twilio, phone_wav(1.0))
    first = _start_worker(hotline.workshop)
    assert slow.started.wait(20)

    # The first worker looks dead (its lease ran out during a long pause); a second one takes over.
    with hotline.db.session() as session:
        session.execute(update(Job).values(lease_until=utcnow() - timedelta(seconds=1)))
        session.commit()
    second = dataclasses.replace(hotline.workshop, transcriber=FakeTranscriber("words of the second worker"))
    assert run_job(second) is not None
    slow.release.set()
    first.join(30)

    with hotline.db.session() as session:
        transcripts = session.scalars(select(SealedItem).where(SealedItem.kind == "transcript")).all()
        assert len(transcripts) == 1
        recording = session.get(Recording, recording_id)
        assert recording.transcript_item_id == transcripts[0].id
        text = Transcript.from_json(open_item(session, private_key, hotline.blobs, transcripts[0], periods=hotline.periods)).text
        assert text == "words of the second worker"
        assert session.scalar(select(Job.state)) == "done"
    assert len(fake_twilio.requests("DELETE", sid)) == 1


def test_only_the_worker_holding_a_job_can_renew_or_complete_it(hotline, fake_twilio):
    recorded_take(hotline, fake_twilio, phone_wav(1.0))
    lease = timedelta(seconds=30)
    with hotline.db.session() as session:
        first = queue.claim(session, lease=lease)
        job_id, first_owner = first.id, first.owner
    later = utcnow() + lease + timedelta(seconds=1)
    with hotline.db.session() as session:
        second = queue.claim(session, now=later, lease=lease)
        assert second.id == job_id and second.owner not in (None, first_owner)
        taken_over_until = second.lease_until
    with hotline.db.session() as session:
        assert not queue.renew_lease(session, job_id, first_owner, lease)
        assert not queue.complete(session, job_id, first_owner)
        session.commit()
    with hotline.db.session() as session:
        job = session.get(Job, job_id)
        assert (job.state, job.owner, job.lease_until) == ("running", second.owner, taken_over_until)
        assert queue.renew_lease(session, job_id, second.owner, lease)
        assert queue.complete(session, job_id, second.owner)
        session.commit()
        assert session.get(Job, job_id, populate_existing=True).state == "done"


def test_with_default_settings_a_dead_worker_s_job_is_taken_over_within_a_minute(hotline, fake_twilio, settings_env):
    defaults = Settings.from_env(dict(settings_env))
    lease = timedelta(seconds=defaults.job_lease_seconds)
    recorded_take(hotline, fake_twilio, phone_wav(1.0))
    started = utcnow()
    with hotline.db.session() as session:
        assert queue.claim(session, now=started, lease=lease) is not None  # then the machine lost power
    with hotline.db.session() as session:
        assert queue.claim(session, now=started + timedelta(seconds=59), lease=lease) is not None


def test_a_job_whose_owner_died_on_this_machine_is_taken_over_without_waiting_for_its_lease(hotline, fake_twilio):
    import subprocess
    import sys

    import pytest

    from jobs import owners

    if owners.machine_key() is None:
        pytest.skip("no /proc here: only the lease can tell")
    recorded_take(hotline, fake_twilio, phone_wav(1.0))
    with hotline.db.session() as session:
        job_id = queue.claim(session, lease=timedelta(minutes=5)).id
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = owners._start_time(worker.pid)[1]
        held_by_worker = f"{owners.machine_key()}/{worker.pid}/{started}/host/0123456789abcdef"
        with hotline.db.session() as session:
            session.get(Job, job_id).owner = held_by_worker
            session.commit()
            assert queue.claim(session, lease=hotline.workshop.lease) is None  # its owner still runs: the lease stands
    finally:
        worker.kill()
        worker.wait()
    with hotline.db.session() as session:
        taken = queue.claim(session, lease=hotline.workshop.lease)
        assert taken is not None and taken.id == job_id and taken.owner != held_by_worker


def test_an_owner_on_another_machine_is_trusted_until_its_lease_runs_out(hotline, fake_twilio):
    recorded_take(hotline, fake_twilio, phone_wav(1.0))
    with hotline.db.session() as session:
        job_id = queue.claim(session, lease=timedelta(minutes=5)).id
        session.get(Job, job_id).owner = "0000000000000000/1/1/elsewhere/0123456789abcdef"
        session.commit()
        assert queue.claim(session, lease=hotline.workshop.lease) is None
        assert queue.claim(session, now=utcnow() + timedelta(minutes=6), lease=hotline.workshop.lease).id == job_id
