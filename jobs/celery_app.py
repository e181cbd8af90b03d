"""Scaling out: the same recording job run by Celery workers on other machines, over Redis.

The database stays the truth. A Celery message only says "job N may be due"; the worker claims the
job row exactly as the embedded worker does, so a duplicate message is harmless, and a lost one is
made up for by each worker's sweeper, which re-announces due jobs (including those whose worker
died) every SWEEP_SECONDS, and sweeps Twilio for recordings our callbacks missed (jobs/sweep.py).

    celery --app jobs.celery_app worker --concurrency 2
"""
from __future__ import annotations

import logging
import os
import threading

from celery import Celery, signals

from jobs import queue
from jobs.recording import Workshop, run_job
from settings import Settings
from storage.models import Job

log = logging.getLogger("hotline.celery")
SWEEP_SECONDS = float(os.environ.get("HOTLINE_SWEEP_SECONDS", "30"))

celery = Celery("hotline", set_as_current=False)
celery.config_from_object("jobs.celery_config")

_workshop: Workshop | None = None
_sweeper_stop = threading.Event()


def worker_workshop() -> Workshop:
    """This worker process's workshop: its own database connections and one speech model."""
    global _workshop
    if _workshop is None:
        from app import build_hotline, make_transcriber

        settings = Settings.from_env()
        workshop = build_hotline(settings).workshop
        workshop.transcriber = make_transcriber(settings)
        if workshop.transcriber is not None:
            workshop.transcriber.load()
        _workshop = workshop
    return _workshop


@celery.task(name="hotline.run_job", ignore_result=True)
def run_job_task(job_id: int) -> None:
    workshop = worker_workshop()
    run_job(workshop, job_id)
    with workshop.db.session() as session:
        job = session.get(Job, job_id)
        if job is not None and job.state == "queued":  # failed this time: come back when it is due
            run_job_task.apply_async((job_id,), eta=job.run_after)
        if job is not None and job.state != "running":
            # A take's jobs run one at a time: one that waited for this job (a discard while the take
            # was being stored) may run now, rather than at the next sweep.
            for sibling in queue.due_job_ids(session, recording_id=job.recording_id):
                run_job_task.apply_async((sibling,))


@signals.worker_init.connect
def _check_before_starting(**_):
    # A worker that cannot transcribe must not start: say why now, not on the first report.
    from app import make_transcriber

    make_transcriber(Settings.from_env())


@signals.worker_process_init.connect
def _load_in_each_process(**_):
    worker_workshop()


@signals.worker_ready.connect
def _start_sweeper(**_):
    threading.Thread(target=_sweep_forever, name="hotline-sweeper", daemon=True).start()


@signals.worker_shutdown.connect
def _stop_sweeper(**_):
    _sweeper_stop.set()


def _sweep_forever() -> None:
    import time

    from app import build_hotline
    from jobs.sweep import sweep_twilio

    settings = Settings.from_env()
    workshop = build_hotline(settings).workshop  # no speech model in this (parent) process
    db = workshop.db
    next_twilio_sweep = time.monotonic() + min(settings.twilio_sweep_seconds, 5)
    while not _sweeper_stop.is_set():
        if settings.twilio_sweep_seconds and time.monotonic() >= next_twilio_sweep:
            try:
                sweep_twilio(workshop)  # what callbacks missed at Twilio; its new jobs are announced below
            except Exception as error:
                log.warning("Twilio sweep failed: %s", type(error).__name__)
            next_twilio_sweep = time.monotonic() + settings.twilio_sweep_seconds
        try:
            with db.session() as session:
                for job_id in queue.due_job_ids(session):
                    run_job_task.apply_async((job_id,))
        except Exception as error:
            log.warning("sweeper could not re-announce due jobs: %s", type(error).__name__)
        _sweeper_stop.wait(SWEEP_SECONDS)


class CeleryDispatcher:
    """The web side: announces new jobs to the workers. Never delays or fails a webhook."""

    def __init__(self, settings: Settings):
        celery.conf.update(broker_url=settings.broker_url)

    def start(self) -> None:
        pass

    def notify(self, job_ids: list[int]) -> None:
        threading.Thread(target=self._announce, args=(list(job_ids),), daemon=True).start()

    @staticmethod
    def _announce(job_ids: list[int]) -> None:
        for job_id in job_ids:
            try:
                run_job_task.apply_async((job_id,))
            except Exception as error:  # the job row is committed; a worker's sweeper will find it
                log.warning("could not announce job %s to the workers: %s", job_id, type(error).__name__)

    def stop(self, timeout: float = 10.0) -> None:
        pass
