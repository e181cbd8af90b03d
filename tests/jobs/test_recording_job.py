"""The recording job against a fake Twilio over real HTTP: fetch, seal, commit, and only then delete."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ivr.desk import SqlCallDesk
from jobs import queue
from jobs.recording import run_job
from jobs.worker import run_until_idle
from console.keys import open_item
from storage.models import Job, Recording, SealedItem, utcnow
from tests.support.audio import distinctive_chunk, phone_wav
from tests.support.takes import recorded_take, watch_twilio_deletes


@pytest.fixture
def wav():
    return phone_wav(2.0)


def _audio_items(hotline):
    with hotline.db.session() as session:
        return session.scalars(select(SealedItem).where(SealedItem.kind == "recording")).all()


def test_a_take_is_fetched_sealed_stored_once_and_then_deleted_at_twilio(hotline, fake_twilio, wav, private_key):
    recording_id, sid = recorded_take(hotline, fake_twilio, wav, callbacks=3)
    assert run_until_idle(hotline.workshop) == 1
    with hotline.db.session() as session:
        items = session.scalars(select(SealedItem)).all()
        assert [item.kind for item in items] == ["recording"]
        assert open_item(session, private_key, hotline.blobs, items[0], periods=hotline.periods) == wav
        recording = session.get(Recording, recording_id)
        assert recording.audio_item_id == items[0].id and recording.deleted_at_twilio
    assert sid not in fake_twilio.recordings
    gets = fake_twilio.requests("GET", sid)
    deletes = fake_twilio.requests("DELETE", sid)
    assert len(gets) == 1 and len(deletes) == 1 and gets[0].monotonic < deletes[0].monotonic


def test_twilio_delete_happens_only_after_the_sealed_copy_is_committed(hotline, fake_twilio, wav, settings):
    recorded_take(hotline, fake_twilio, wav)
    audio_seen_at_delete = watch_twilio_deletes(hotline.workshop, settings.database_url, Recording.audio_item_id)
    run_until_idle(hotline.workshop)
    assert audio_seen_at_delete and audio_seen_at_delete[0] is not None


def test_when_storing_fails_nothing_is_deleted_at_twilio(hotline, fake_twilio, wav, monkeypatch):
    recording_id, sid = recorded_take(hotline, fake_twilio, wav)

    def broken_seal(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(hotline.blobs, "put", broken_seal)
    run_job(hotline.workshop)
    assert fake_twilio.requests("DELETE") == []
    assert sid in fake_twilio.recordings
    assert _audio_items(hotline) == []
    with hotline.db.session() as session:
        job = session.scalar(select(Job))
        assert job.state == "queued" and job.last_error == "OSError"


def test_download_failures_are_retried_with_backoff_then_succeed(hotline, fake_twilio, wav):
    recording_id, sid = recorded_take(hotline, fake_twilio, wav)
    fake_twilio.fail_next("GET", sid, status=503, times=2)
    hotline.workshop.settings = hotline.workshop.settings.with_overrides(retry_base_seconds=30.0)
    assert run_job(hotline.workshop) is not None
    with hotline.db.session() as session:
        job = session.scalar(select(Job))
        assert job.state == "queued" and "503" in job.last_error
        first_delay = job.run_after - utcnow()
    assert timedelta(seconds=25) < first_delay <= timedelta(seconds=30)
    assert run_job(hotline.workshop) is None  # not due yet
    for expected_attempt in (2, 3):
        with hotline.db.session() as session:
            session.get(Job, job.id).run_after = utcnow()
            session.commit()
        run_job(hotline.workshop)
    with hotline.db.session() as session:
        job = session.get(Job, job.id)
        assert job.state == "done" and job.attempts == 3
    assert len(_audio_items(hotline)) == 1 and sid not in fake_twilio.recordings


def test_a_job_that_keeps_failing_gives_up_and_leaves_twilio_s_copy(hotline, fake_twilio, wav):
    recording_id, sid = recorded_take(hotline, fake_twilio, wav)
    fake_twilio.fail_next("GET", sid, status=500, times=100)
    attempts = hotline.settings.job_max_attempts
    for _ in range(attempts + 2):
        run_job(hotline.workshop)
    with hotline.db.session() as session:
        job = session.scalar(select(Job))
        assert job.state == "failed" and job.attempts == attempts
    assert sid in fake_twilio.recordings and fake_twilio.requests("DELETE") == []


def test_a_job_whose_worker_died_is_picked_up_again_after_its_lease(hotline, fake_twilio, wav):
    recording_id, sid = recorded_take(hotline, fake_twilio, wav)
    with hotline.db.session() as session:
        abandoned = queue.claim(session, lease=hotline.workshop.lease)  # a worker took it, then its process died
        assert abandoned is not None
    assert run_job(hotline.workshop) is None  # still leased
    with hotline.db.session() as session:
        session.get(Job, abandoned.id).lease_until = utcnow() - timedelta(seconds=1)
        session.commit()
    assert run_job(hotline.workshop) == abandoned.id
    assert len(_audio_items(hotline)) == 1 and sid not in fake_twilio.recordings


def test_twice_claimed_job_is_won_by_one_worker_only(hotline, fake_twilio, wav):
    recorded_take(hotline, fake_twilio, wav)
    with hotline.db.session() as first, hotline.db.session() as second:
        assert queue.claim(first, lease=hotline.workshop.lease) is not None
        assert queue.claim(second, lease=hotline.workshop.lease) is None


def test_absent_recording_is_noted_and_not_fetched(hotline, fake_twilio, wav):
    recording_id, sid = recorded_take(hotline, fake_twilio, wav, status="absent")
    assert run_until_idle(hotline.workshop) == 0
    with hotline.db.session() as session:
        assert session.get(Recording, recording_id).twilio_status == "absent"
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_discarded_take_is_removed_from_storage_and_twilio(hotline, fake_twilio, wav):
    recording_id, sid = recorded_take(hotline, fake_twilio, wav)
    run_until_idle(hotline.workshop)
    with hotline.db.session() as session:
        call_sid = session.get(Recording, recording_id).call_sid
        desk = SqlCallDesk(session, hotline.sealer, hotline.settings.secret_key)
        desk.discard_take(call_sid, sid)
        session.commit()
    run_until_idle(hotline.workshop)
    assert _audio_items(hotline) == []
    with hotline.db.session() as session:
        assert session.get(Recording, recording_id).decision == "discard"


def test_a_take_discarded_before_it_was_fetched_is_never_stored(hotline, fake_twilio, wav):
    recording_id, sid = recorded_take(hotline, fake_twilio, wav)
    with hotline.db.session() as session:
        recording = session.get(Recording, recording_id)
        SqlCallDesk(session, hotline.sealer, hotline.settings.secret_key).discard_take(recording.call_sid, sid)
        session.commit()
    run_until_idle(hotline.workshop)
    assert _audio_items(hotline) == []
    assert sid not in fake_twilio.recordings
    assert fake_twilio.requests("GET", sid) == []


def test_no_plaintext_audio_reaches_the_disk(hotline, fake_twilio, wav, data_dir):
    recorded_take(hotline, fake_twilio, wav)
    run_until_idle(hotline.workshop)
    hotline.db.dispose()
    marker = distinctive_chunk(wav)
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert marker not in path.read_bytes(), path.name
