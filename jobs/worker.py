"""The embedded worker: a few threads in the web process that run due jobs from the database.

Webhooks wake it after committing new jobs; it also polls, so retries fall due and jobs left by a
process that died are picked up again once their lease runs out. One more thread sweeps Twilio every
HOTLINE_TWILIO_SWEEP_SECONDS for recordings our callbacks missed (jobs/sweep.py), and another purges
the cases due for deletion every HOTLINE_PURGE_SECONDS (jobs/retention.py).
"""
from __future__ import annotations

import logging
import threading
import time
import traceback

from sqlalchemy import select

import metrics
from jobs.recording import Workshop, run_job
from storage.models import Job, JobKind, JobState

log = logging.getLogger("hotline.worker")


class InProcessWorker:
    def __init__(self, workshop: Workshop, threads: int = 1, poll_seconds: float = 2.0, sweep_seconds: float | None = None,
                 purge_seconds: float | None = None):
        self.workshop = workshop
        self.purge_seconds = workshop.settings.purge_seconds if purge_seconds is None else purge_seconds
        self.thread_count = threads
        self.poll_seconds = poll_seconds
        self.sweep_seconds = workshop.settings.twilio_sweep_seconds if sweep_seconds is None else sweep_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self._threads:
            return
        self.workshop.transcriber = metrics.timed(self.workshop.transcriber)
        self._stop.clear()
        for number in range(self.thread_count):
            thread = threading.Thread(target=self._loop, name=f"hotline-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.sweep_seconds > 0:
            thread = threading.Thread(target=self._sweep_loop, name="hotline-twilio-sweep", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.purge_seconds > 0:
            thread = threading.Thread(target=self._purge_loop, name="hotline-purge", daemon=True)
            thread.start()
            self._threads.append(thread)

    def notify(self, job_ids: list[int]) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = run_counted(self.workshop)
            except Exception as error:  # the database itself may be briefly unavailable; keep the worker alive
                # Type and stack only: messages from the database layer can quote parameters.
                log.error("worker could not run a job: %s\n%s", type(error).__name__,
                          "".join(traceback.format_tb(error.__traceback__)))
                ran = None
            if ran is None:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    def _sweep_loop(self) -> None:
        from jobs.sweep import sweep_twilio

        # The first sweep soon after start (what a crash or an outage left behind), then every interval.
        delay = min(self.sweep_seconds, 5.0)
        while not self._stop.wait(delay):
            try:
                done = sweep_twilio(self.workshop)
            except Exception as error:
                log.warning("Twilio sweep failed: %s", type(error).__name__)
                done = None
            if done and (done["queued"] or done["taken in"] or done["call job queued"]):
                self._wake.set()
            delay = self.sweep_seconds

    def _purge_loop(self) -> None:
        from jobs.retention import purge_for

        delay = min(self.purge_seconds, 60.0)  # soon after start: what came due while nothing ran
        while not self._stop.wait(delay):
            try:
                purge_for(self.workshop)
            except Exception as error:
                log.warning("retention purge failed: %s", type(error).__name__)
            delay = self.purge_seconds


def run_until_idle(workshop: Workshop, limit: int = 1000) -> int:
    """Run due jobs in this thread until none is due (tests and the `jobs run` command)."""
    workshop.transcriber = metrics.timed(workshop.transcriber)
    count = 0
    while count < limit and run_counted(workshop) is not None:
        count += 1
    return count


# What a job's row says after a run: finished, queued again after a failure, given up, or another worker's.
_OUTCOMES = {JobState.DONE: "done", JobState.QUEUED: "retry", JobState.FAILED: "failed"}
_KINDS = tuple(kind.value for kind in JobKind)


def run_counted(workshop: Workshop) -> int | None:
    """run_job, with the run's outcome and time counted for the metrics (observability.py)."""
    started = time.perf_counter()
    job_id = run_job(workshop)
    if job_id is None:
        return None
    try:
        with workshop.db.session() as session:
            kind, state = session.execute(select(Job.kind, Job.state).where(Job.id == job_id)).one()
        # Still running: another worker took it over (this one lost its lease, and committed nothing).
        metrics.job_ran(str(kind), _OUTCOMES.get(state, "lost"), time.perf_counter() - started, _KINDS)
    except Exception as error:  # counting never stops the worker
        log.warning("could not count job %s (%s)", job_id, type(error).__name__)
    return job_id
