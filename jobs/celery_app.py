"""Scaling out: the same recording job run by Celery workers on other machines, over Redis.

The database stays the truth. A Celery message only says "job N may be due"; the worker claims the
job row exactly as the embedded worker does, so a duplicate message is harmless, and a lost one is
made up for by each worker's sweeper, which re-announces due jobs (including those whose worker
died) every HOTLINE_SWEEP_SECONDS, and sweeps Twilio for recordings our callbacks missed (jobs/sweep.py).

    celery --app jobs.celery_app worker --concurrency 2
"""
from __future__ import annotations

import logging
import threading
from functools import lru_cache

from celery import Celery, signals

from jobs import queue
from jobs.dispatch import RUN_JOB_TASK
from jobs.recording import Workshop, run_job
from settings import Settings
from storage.migrate import SchemaMismatch, check_stores_at_start
from storage.models import Job, JobState
from transcription.model import ModelError
from wiring import build_hotline, make_transcriber

log = logging.getLogger("hotline.celery")


@lru_cache(maxsize=1)
def worker_settings() -> Settings:
    """The worker's settings, read once, when Celery first needs its configuration (not at import)."""
    return Settings.from_env()


celery = Celery("hotline", set_as_current=False)
celery.config_from_object("jobs.celery_config")
celery.add_defaults(lambda: {"broker_url": worker_settings().broker_url})

_workshop: Workshop | None = None
_sweeper_stop = threading.Event()


def worker_workshop() -> Workshop:
    """This worker process's workshop: its own database connections and one speech model."""
    global _workshop
    if _workshop is None:
        settings = Settings.from_env()
        workshop = build_hotline(settings).workshop
        workshop.transcriber = make_transcriber(settings)
        if workshop.transcriber is not None:
            workshop.transcriber.load()
        _workshop = workshop
    return _workshop


@celery.task(name=RUN_JOB_TASK, ignore_result=True)
def run_job_task(job_id: int) -> None:
    workshop = worker_workshop()
    run_job(workshop, job_id)
    with workshop.db.session() as session:
        job = session.get(Job, job_id)
        if job is not None and job.state == JobState.QUEUED:  # failed this time: come back when it is due
            run_job_task.apply_async((job_id,), eta=job.run_after)
        if job is not None and job.state != JobState.RUNNING and job.recording_id is not None:  # not a call's
            # A take's jobs run one at a time: one that waited for this job (a discard while the take
            # was being stored) may run now, rather than at the next sweep.
            for sibling in queue.due_job_ids(session, recording_id=job.recording_id):
                run_job_task.apply_async((sibling,))


@signals.worker_init.connect
def _check_before_starting(**_):
    # In the main process, before the pool is forked. A worker on a database or key store that is not at
    # this code's heads must not start, and one that cannot transcribe neither: say why now, not on the
    # first report. Celery logs an exception raised in a signal handler and carries on, so the refusal is a
    # SystemExit, which it lets through: the message on stderr, once, and a non-zero exit.
    settings = worker_settings()
    try:
        check_stores_at_start(settings.database_url, settings.key_store_url)
        make_transcriber(settings)
    except (SchemaMismatch, ModelError) as error:
        raise SystemExit(f"the Celery worker cannot start: {error}") from None


@signals.worker_process_init.connect
def _load_in_each_process(**_):
    from storage.background import run_in_the_background

    run_in_the_background(idle=False)  # on SQLite, the line's writers go first; on their own machines, no idling
    worker_workshop()


@signals.worker_ready.connect
def _start_sweeper(**_):
    threading.Thread(target=_sweep_forever, name="hotline-sweeper", daemon=True).start()


@signals.worker_shutdown.connect
def _stop_sweeper(**_):
    _sweeper_stop.set()


def _sweep_forever() -> None:
    import time

    from jobs.retention import purge_for
    from jobs.sweep import sweep_twilio

    settings = worker_settings()
    workshop = build_hotline(settings).workshop  # no speech model in this (parent) process
    db = workshop.db
    next_twilio_sweep = time.monotonic() + min(settings.twilio_sweep_seconds, 5)
    next_purge = time.monotonic() + min(settings.purge_seconds, 60)
    while not _sweeper_stop.is_set():
        if settings.twilio_sweep_seconds and time.monotonic() >= next_twilio_sweep:
            try:
                sweep_twilio(workshop)  # what callbacks missed at Twilio; its new jobs are announced below
            except Exception as error:
                log.warning("Twilio sweep failed: %s", type(error).__name__)
            next_twilio_sweep = time.monotonic() + settings.twilio_sweep_seconds
        if settings.purge_seconds and time.monotonic() >= next_purge:
            try:
                purge_for(workshop)  # cases due for deletion, then spent period keys (jobs/retention.py)
            except Exception as error:
                log.warning("retention purge failed: %s", type(error).__name__)
            next_purge = time.monotonic() + settings.purge_seconds
        try:
            with db.session() as session:
                for job_id in queue.due_job_ids(session):
                    run_job_task.apply_async((job_id,))
        except Exception as error:
            log.warning("sweeper could not re-announce due jobs: %s", type(error).__name__)
        _sweeper_stop.wait(settings.job_sweep_seconds)
