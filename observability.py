"""The Prometheus endpoint on the line's private address: the web app's hooks, what is read from the
database at each scrape, and who serves the scrape.

- Outside gunicorn (flask, the simulator), the line's web process serves its own registry on
  HOTLINE_METRICS_ADDRESS (default 127.0.0.1:9100) from a thread.
- Under gunicorn, several workers count: each writes to files in PROMETHEUS_MULTIPROC_DIR (set by
  gunicorn.conf.py before it forks them) and the master serves their sum, so a scrape sees the whole
  line rather than whichever worker answered.

Labels are fixed sets only (metrics.py): a webhook's step is one of CallFlow.STEPS, an endpoint one of
the app's own, never the request's path, query or form.
"""
from __future__ import annotations

import functools
import logging
import threading
import time

from flask import Flask, g, request
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from werkzeug.exceptions import HTTPException

import metrics
from ivr.flow import CallFlow
from storage.cases import UNLOCK_FAILURE_LIMIT
from storage.db import Database
from storage.models import (
    Job, JobKind, JobState, ReferenceLock, Recording, TakeDecision, TranscriptionStatus, UnlockFailureHour, utcnow,
)

log = logging.getLogger("hotline.metrics")

# Twilio's webhooks by endpoint, as the step label names them; ivr.step's own step comes from the URL map.
WEBHOOKS = {"ivr.voice": "voice", "ivr.recording_status": "recording-status", "ivr.call_status": "status"}
WAITING_STATES = (JobState.QUEUED, JobState.RUNNING, JobState.FAILED)
_STARTED = "hotline_metrics_started"


# --- the web app's hooks ------------------------------------------------------------------------------

def webhook_step() -> str | None:
    """This request's step of the call flow, or None when it is no webhook of Twilio's."""
    if request.endpoint == "ivr.step":
        step = (request.view_args or {}).get("step")
        return step if step in CallFlow.STEPS else metrics.OTHER
    return WEBHOOKS.get(request.endpoint or "")


def endpoint_label(app: Flask) -> str:
    endpoint = request.endpoint
    if endpoint is None:
        return "unrouted"
    if endpoint == "ivr.step":
        return f"ivr.step:{webhook_step()}"
    return endpoint if endpoint in app.view_functions else metrics.OTHER


def install(app: Flask) -> None:
    """Time every webhook by step; count every response by endpoint and status class; count the ivr
    blueprint's failures that its error handler turns into an apology (a 200, or a callback's 503)."""

    @app.before_request
    def _start_clock():
        g.setdefault(_STARTED, time.perf_counter())

    @app.after_request
    def _count(response):
        try:
            step = webhook_step()
            started = g.get(_STARTED)
            if step is not None and started is not None:
                metrics.webhook_seconds.labels(step).observe(time.perf_counter() - started)
            metrics.responses.labels(endpoint_label(app), metrics.status_class(response.status_code)).inc()
        except Exception as error:  # counting must never cost a caller their answer
            log.warning("could not count a response (%s)", type(error).__name__)
        return response

    handlers = app.error_handler_spec.get("ivr", {}).get(None, {})
    for kind, handler in list(handlers.items()):
        handlers[kind] = _counting_failures(app, handler)


def _counting_failures(app: Flask, handler):
    @functools.wraps(handler)
    def counted(error):
        if not isinstance(error, HTTPException):
            try:
                metrics.webhook_failures.labels(endpoint_label(app)).inc()
            except Exception:
                pass
        return handler(error)

    return counted


# --- read from the database at each scrape ------------------------------------------------------------

class DatabaseCollector:
    """What the database knows, whichever process did it: the queue, the transcription backlog, jobs
    that gave up, failed unlocks. Counts only: no id, reference or time of anything."""

    def __init__(self, db: Database, *, disconnect_after: bool = False):
        self.db = db
        # gunicorn's master: no connection of its pool lingers to be inherited by the next worker it forks.
        self.disconnect_after = disconnect_after

    def collect(self):
        up = GaugeMetricFamily("hotline_database_up", "1 when the metrics could read the database.")
        try:
            with self.db.session() as session:
                families = list(_database_families(session))
            if self.disconnect_after:
                self.db.dispose()
        except Exception as error:
            log.warning("metrics could not read the database (%s)", type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _database_families(session):
    now = utcnow()
    kinds = [kind.value for kind in JobKind]
    jobs = GaugeMetricFamily("hotline_jobs", "Jobs waiting (queued), running, or given up (failed: "
                             "they wait for `flask --app app jobs retry`), by kind.", labels=["kind", "state"])
    counts = {(str(kind), str(state)): count for kind, state, count in session.execute(
        select(Job.kind, Job.state, func.count()).where(Job.state.in_(WAITING_STATES)).group_by(Job.kind, Job.state))}
    for kind in kinds:
        for state in WAITING_STATES:
            jobs.add_metric([kind, state.value], counts.get((kind, state.value), 0))
    yield jobs

    due = GaugeMetricFamily("hotline_jobs_due", "Queued jobs due now (the queue's depth), by kind.", labels=["kind"])
    due_counts = {str(kind): count for kind, count in session.execute(
        select(Job.kind, func.count()).where(Job.state == JobState.QUEUED, Job.run_after <= now).group_by(Job.kind))}
    for kind in kinds:
        due.add_metric([kind], due_counts.get(kind, 0))
    yield due

    waiting = (Recording.transcription_status == TranscriptionStatus.PENDING, Recording.decision == TakeDecision.KEEP)
    backlog, backlog_seconds = session.execute(
        select(func.count(), func.coalesce(func.sum(Recording.duration_seconds), 0)).where(*waiting)).one()
    yield GaugeMetricFamily("hotline_transcription_backlog", "Kept takes not yet transcribed.", value=backlog)
    yield GaugeMetricFamily("hotline_transcription_backlog_audio_seconds",
                            "Seconds of audio in the takes not yet transcribed.", value=backlog_seconds)

    hour = now.replace(minute=0, second=0, microsecond=0)
    failures = session.scalar(select(UnlockFailureHour.failures).where(UnlockFailureHour.hour == hour)) or 0
    yield GaugeMetricFamily("hotline_unlock_failures_this_hour",
                            "Failed reference and PIN attempts across all references in this clock hour.", value=failures)
    locked = session.scalar(select(func.count()).select_from(ReferenceLock)
                            .where(ReferenceLock.failures >= UNLOCK_FAILURE_LIMIT)) or 0
    yield GaugeMetricFamily("hotline_references_locked", "References locked after too many failed PINs.", value=locked)


# --- who serves the scrape --------------------------------------------------------------------------

class _Forward:
    """This process's own metrics (the default registry) in a registry of the endpoint's own."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


def scrape_registry(db: Database | None, multiprocess_dir=None) -> CollectorRegistry:
    """What one scrape reads: this process's metrics, or (under gunicorn) every worker's; and the database's."""
    registry = CollectorRegistry()
    if multiprocess_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=str(multiprocess_dir))
    else:
        registry.register(_Forward(REGISTRY))
    if db is not None:
        registry.register(DatabaseCollector(db, disconnect_after=multiprocess_dir is not None))
    return registry


_servers: dict[tuple[str, int], object] = {}
_servers_lock = threading.Lock()


def serve(address: tuple[str, int], registry: CollectorRegistry):
    """Serve the registry on address from a thread; once per address per process. A port in use is
    logged, not fatal: the line answers calls with or without its metrics."""
    with _servers_lock:
        if address in _servers:
            return _servers[address]
        host, port = address
        try:
            server, _thread = start_http_server(port, addr=host, registry=registry)
        except OSError as error:
            log.warning("metrics are not served: %s:%d could not be bound (%s)", host, port, type(error).__name__)
            return None
        _servers[address] = server
        log.info("metrics served on http://%s:%d/metrics", host, port)
        return server


def stop_serving(address: tuple[str, int]) -> None:
    with _servers_lock:
        server = _servers.pop(address, None)
    if server is not None:
        server.shutdown()
        server.server_close()


def serve_web_process(settings, db: Database):
    """The line's web process outside gunicorn; under gunicorn (a multiprocess folder is set) the master serves."""
    if settings.metrics_address is None or settings.metrics_multiprocess_dir is not None:
        return None
    return serve(settings.metrics_address, scrape_registry(db))


# --- gunicorn's master (gunicorn.conf.py) ------------------------------------------------------------

def serve_gunicorn_master(address: tuple[str, int], multiprocess_dir) -> None:
    """Every worker's counts, summed from their files, and the database's, served by the master.
    Settings that do not load here are the workers' to report; the endpoint then serves the counts only."""
    from settings import ConfigError, Settings

    try:
        db = Database(Settings.from_env().database_url)
    except ConfigError as error:
        log.warning("metrics: the database's figures are left out (%s)", str(error).splitlines()[0])
        db = None
    serve(address, scrape_registry(db, multiprocess_dir))
