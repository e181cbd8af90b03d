"""How new jobs reach a worker: the embedded threads, Celery (scaled out), or nobody (jobs wait).

The web side tells Celery workers about a job by the task's name only (send_task): it never imports
the worker's entry point (jobs/celery_app.py), which builds a whole workshop from the environment.
"""
from __future__ import annotations

import logging
import threading
from typing import Protocol

from jobs.recording import Workshop
from jobs.worker import InProcessWorker
from settings import Settings

log = logging.getLogger("hotline.celery")
RUN_JOB_TASK = "hotline.run_job"  # registered by jobs/celery_app.py; its argument is the job's id


class Dispatcher(Protocol):
    def start(self) -> None: ...

    def notify(self, job_ids: list[int]) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


class NoDispatcher:
    """Jobs stay queued in the database for `flask --app app jobs run` or a worker elsewhere."""

    def start(self) -> None:
        pass

    def notify(self, job_ids: list[int]) -> None:
        pass

    def stop(self, timeout: float = 10.0) -> None:
        pass


class CeleryDispatcher:
    """The web side: announces new jobs to the Celery workers. Never delays or fails a webhook."""

    def __init__(self, broker_url: str):
        from celery import Celery

        self.client = Celery("hotline", set_as_current=False)
        self.client.config_from_object("jobs.celery_config")
        self.client.conf.update(broker_url=broker_url)

    def start(self) -> None:
        pass

    def notify(self, job_ids: list[int]) -> None:
        threading.Thread(target=self._announce, args=(list(job_ids),), daemon=True).start()

    def _announce(self, job_ids: list[int]) -> None:
        for job_id in job_ids:
            try:
                self.client.send_task(RUN_JOB_TASK, args=(job_id,))
            except Exception as error:  # the job row is committed; a worker's sweeper will find it
                log.warning("could not announce job %s to the workers: %s", job_id, type(error).__name__)

    def stop(self, timeout: float = 10.0) -> None:
        pass


def make_dispatcher(settings: Settings, workshop: Workshop) -> Dispatcher:
    if settings.worker_mode == "inprocess" and settings.worker_wake_socket:
        from jobs.worker_process import WakeWorkerProcess

        return WakeWorkerProcess(settings.worker_wake_socket)  # the worker runs beside gunicorn
    if settings.worker_mode == "inprocess":
        return InProcessWorker(workshop, threads=settings.worker_threads)
    if settings.worker_mode == "celery":
        return CeleryDispatcher(settings.broker_url)
    return NoDispatcher()
