"""How new jobs reach a worker: the embedded threads, Celery (scaled out), or nobody (jobs wait)."""
from __future__ import annotations

from typing import Protocol

from jobs.recording import Workshop
from jobs.worker import InProcessWorker
from settings import Settings


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


def make_dispatcher(settings: Settings, workshop: Workshop) -> Dispatcher:
    if settings.worker_mode == "inprocess":
        return InProcessWorker(workshop, threads=settings.worker_threads)
    if settings.worker_mode == "celery":
        from jobs.celery_app import CeleryDispatcher

        return CeleryDispatcher(settings)
    return NoDispatcher()
