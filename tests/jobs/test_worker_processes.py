"""Workers as separate processes: one killed mid-transcription, and Celery workers over a real Redis."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from simulator.call import CallSimulator
from storage.models import Job, Recording, SealedItem
from tests.support.processes import wait_until
from tests.support.processes import RedisServer, Worker
from tests.support.takes import recorded_take
from tests.support import speech_corpus

pytestmark = pytest.mark.slow


@pytest.fixture
def long_call(utterances) -> bytes:
    """All the corpus's speech as one call, so transcribing it takes a few seconds."""
    return speech_corpus.telephone_call([utterances[key] for key in sorted(utterances)])


@pytest.fixture
def worker_env(settings_env, model_path) -> dict[str, str]:
    return dict(settings_env, VOSK_MODEL_PATH=str(model_path), HOTLINE_TRANSCRIPTION="on",
                HOTLINE_JOB_LEASE_SECONDS="3", HOTLINE_WORKER="inprocess")


def _recording(hotline, recording_id) -> Recording:
    with hotline.db.session() as session:
        return session.get(Recording, recording_id)


def _is_transcribing(hotline, recording_id) -> bool:
    recording = _recording(hotline, recording_id)
    return (recording.audio_item_id is not None and recording.transcription_attempts == 1
            and recording.transcription_status == "pending")


def _finished(hotline, recording_id) -> bool:
    recording = _recording(hotline, recording_id)
    return recording.transcription_status == "done" and recording.deleted_at_twilio


def _count(hotline, kind: str) -> int:
    with hotline.db.session() as session:
        return session.scalar(select(func.count()).select_from(SealedItem).where(SealedItem.kind == kind))


def test_a_worker_killed_mid_transcription_loses_nothing_and_makes_one_transcript(
    hotline, fake_twilio, long_call, worker_env, tmp_path
):
    recording_id, sid = recorded_take(hotline, fake_twilio, long_call)
    first = Worker.hotline(worker_env, tmp_path / "first.log")
    try:
        assert wait_until(lambda: _is_transcribing(hotline, recording_id), timeout=60), first.output()
        first.kill()
    finally:
        first.stop()
    assert sid in fake_twilio.recordings  # deletion comes last, so Twilio still has it
    assert _count(hotline, "transcript") == 0

    second = Worker.hotline(worker_env, tmp_path / "second.log")
    try:
        assert wait_until(lambda: _finished(hotline, recording_id), timeout=90), second.output()
    finally:
        second.stop()
    assert _count(hotline, "recording") == 1 and _count(hotline, "transcript") == 1
    assert len(fake_twilio.requests("GET", sid)) == 2  # fetched again: workers cannot open sealed audio
    assert len(fake_twilio.requests("DELETE", sid)) == 1
    recording = _recording(hotline, recording_id)
    assert recording.transcription_attempts == 2
    with hotline.db.session() as session:
        assert session.scalar(select(Job.state)) == "done"


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def celery_app(settings, redis_server):
    from app import create_app

    app = create_app(settings.with_overrides(worker_mode="celery", broker_url=redis_server.url), start_worker=True)
    yield app
    app.extensions["hotline"].db.dispose()


@pytest.fixture
def celery_worker(worker_env, redis_server, tmp_path):
    worker = Worker.celery(dict(worker_env, HOTLINE_WORKER="celery", CELERY_BROKER_URL=redis_server.url,
                                HOTLINE_SWEEP_SECONDS="1"), tmp_path / "celery.log")
    yield worker
    worker.stop()


def test_celery_workers_over_redis_transcribe_every_call_once(
    celery_app, celery_worker, settings, fake_twilio, utterances
):
    hotline = celery_app.extensions["hotline"]
    twilio = CallSimulator.for_flask_app(
        celery_app, public_base_url=settings.public_base_url, account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token, fake_twilio=fake_twilio,
    )
    speech = [utterances[key] for key in sorted(utterances) if key.startswith("librivox/")][:3]
    calls = []
    for utterance in speech:
        caller = twilio.dial()
        for key in "111":
            caller.presses(key)
        caller.says(speech_corpus.telephone_wav(utterance, "signed-integer"), then="#")
        caller.presses("1")
        caller.hangs_up()
        calls.append(caller)
    sids = [caller.recording_sids[0] for caller in calls]

    def all_done() -> bool:
        with hotline.db.session() as session:
            rows = session.scalars(select(Recording).where(Recording.recording_sid.in_(sids))).all()
            return len(rows) == 3 and all(r.transcription_status == "done" and r.deleted_at_twilio for r in rows)

    assert wait_until(all_done, timeout=120), celery_worker.output()
    assert _count(hotline, "transcript") == 3 and _count(hotline, "recording") == 3
    assert all(len(fake_twilio.requests("DELETE", sid)) == 1 for sid in sids)


def test_a_job_the_workers_were_never_told_about_is_found_by_the_sweeper(
    hotline, celery_worker, fake_twilio, long_call
):
    # The web side committed the job but could not reach Redis (or the message was lost).
    recording_id, sid = recorded_take(hotline, fake_twilio, long_call)
    assert wait_until(lambda: _finished(hotline, recording_id), timeout=120), celery_worker.output()
    assert _count(hotline, "transcript") == 1


def test_a_worker_without_a_usable_model_refuses_to_start_and_says_why(worker_env, settings, tmp_path):
    # `settings` has migrated the database and the key store, so it is the model the worker refuses.
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    worker = Worker.hotline(dict(worker_env, VOSK_MODEL_PATH=str(broken)), tmp_path / "broken.log")
    try:
        worker.process.wait(60)
    finally:
        worker.stop()
    assert worker.process.returncode != 0
    assert str(broken) in worker.output() and "model" in worker.output().lower()
    assert "Traceback" not in worker.output()


def test_with_default_settings_a_killed_worker_s_take_is_transcribed_within_a_minute(
    hotline, fake_twilio, long_call, worker_env, tmp_path
):
    """The hotline killed mid-transcription and started again at once, with the default lease."""
    import time

    defaults = {name: value for name, value in worker_env.items() if name != "HOTLINE_JOB_LEASE_SECONDS"}
    recording_id, sid = recorded_take(hotline, fake_twilio, long_call)
    first = Worker.hotline(defaults, tmp_path / "first.log")
    try:
        assert wait_until(lambda: _is_transcribing(hotline, recording_id), timeout=60), first.output()
        killed_at = time.monotonic()
        first.kill()
    finally:
        first.stop()
    second = Worker.hotline(defaults, tmp_path / "second.log")
    try:
        assert wait_until(lambda: _finished(hotline, recording_id), timeout=120), second.output()
        recovered_after = time.monotonic() - killed_at
    finally:
        second.stop()
    print(f"transcript committed {recovered_after:.1f} s after the kill")
    assert recovered_after <= 60
    assert _count(hotline, "transcript") == 1
