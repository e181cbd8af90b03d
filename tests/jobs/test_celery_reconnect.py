"""A Celery worker over a real redis-server keeps taking jobs after its broker connection is broken.

The fault run found a Celery worker that was alive and connected after Redis came back but never took
another job (README, "Faults"). With kombu 5.5.4 the Redis transport drops its event loop's poll hook
whenever one of the consumer's Redis connections is disconnected; when no error follows, nothing ever
asks Redis for the next message again (celery/celery#8030, fixed in kombu 5.7.0 by celery/kombu#2492 and
#2630). A control message the worker cannot read makes Celery reset its control channel, which takes
that path every time; a Redis outage can take it too, depending on timing.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from jobs.dispatch import CeleryDispatcher
from storage.models import Job, Recording
from tests.support.audio import phone_wav
from tests.support.processes import RedisServer, Worker, wait_until
from tests.support.takes import recorded_take

OUTAGES = 3
OUTAGE_SECONDS = 5.0
RESUME_WITHIN = 30.0  # seconds from Redis being back until a newly announced job has run


@pytest.fixture
def database_url(data_dir: Path) -> str:
    # The broker is what breaks here, not the database (both databases: test_worker_processes.py).
    return f"sqlite:///{data_dir / 'hotline.db'}"


@pytest.fixture
def redis_server():
    server = RedisServer()  # this test's own: it is killed and started again
    yield server
    server.stop()


@pytest.fixture
def celery_worker(hotline, settings_env, redis_server, tmp_path):
    worker = Worker.celery(dict(settings_env, HOTLINE_WORKER="celery", CELERY_BROKER_URL=redis_server.url,
                                HOTLINE_TRANSCRIPTION="off", HOTLINE_SWEEP_SECONDS="1"), tmp_path / "celery.log")
    yield worker
    worker.stop()


@pytest.fixture
def announcer(redis_server) -> CeleryDispatcher:
    return CeleryDispatcher(redis_server.url)  # the web side's way of telling the workers


def _stored(hotline, recording_id: int) -> bool:
    with hotline.db.session() as session:
        recording = session.get(Recording, recording_id)
        return recording.audio_item_id is not None and recording.deleted_at_twilio


def _announced_take(hotline, fake_twilio, announcer: CeleryDispatcher) -> int:
    """A take whose store job is committed and announced to the workers, as the webhooks leave it."""
    recording_id, _ = recorded_take(hotline, fake_twilio, phone_wav(1.0))
    with hotline.db.session() as session:
        job_ids = list(session.scalars(select(Job.id).where(Job.recording_id == recording_id)))
    announcer.notify(job_ids)
    return recording_id


def _first_job_runs(hotline, fake_twilio, announcer, celery_worker) -> None:
    first = _announced_take(hotline, fake_twilio, announcer)
    assert wait_until(lambda: _stored(hotline, first), timeout=60), celery_worker.output()


def test_the_worker_takes_jobs_again_after_each_redis_outage(hotline, fake_twilio, redis_server, announcer,
                                                             celery_worker):
    _first_job_runs(hotline, fake_twilio, announcer, celery_worker)
    for outage in range(1, OUTAGES + 1):
        redis_server.halt()
        during = _announced_take(hotline, fake_twilio, announcer)  # cannot be announced: the row waits
        time.sleep(OUTAGE_SECONDS)
        redis_server.start()  # the same port
        back = time.monotonic()
        after = _announced_take(hotline, fake_twilio, announcer)
        resumed = wait_until(lambda: _stored(hotline, after) and _stored(hotline, during), timeout=RESUME_WITHIN)
        assert resumed, (f"outage {outage}: nothing ran in the {time.monotonic() - back:.0f} s after Redis was "
                         f"back\n" + celery_worker.output()[-6000:])
        assert celery_worker.process.poll() is None  # the same worker, not a restarted one


def test_the_worker_takes_jobs_after_its_control_channel_is_reset(hotline, fake_twilio, announcer, celery_worker):
    _first_job_runs(hotline, fake_twilio, announcer, celery_worker)
    mailbox = announcer.client.control.mailbox  # Celery's remote-control exchange (a Redis fanout)
    with announcer.client.connection_for_write() as connection:
        connection.Producer().publish(["not", "a", "command"], exchange=mailbox.exchange, routing_key="",
                                      declare=[mailbox.exchange], serializer="json")
    assert wait_until(lambda: "Control command error" in celery_worker.output(), timeout=10), celery_worker.output()
    # Two takes: a request for a message already sent to Redis still gets its answer; the one after it is the test.
    after = [_announced_take(hotline, fake_twilio, announcer) for _ in range(2)]
    assert wait_until(lambda: all(_stored(hotline, take) for take in after), timeout=RESUME_WITHIN), (
        f"{sum(_stored(hotline, take) for take in after)} of 2 takes stored after the worker reset its control "
        "channel\n" + celery_worker.output()[-6000:])
