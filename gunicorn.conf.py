"""Gunicorn's settings for the line (Procfile, scripts/run: `--config gunicorn.conf.py`).

The access log names the method, the path and the status, never the query string: the line's menu URLs
carry one (`?take=RE...`, a Twilio RecordingSid; `?try=2`), and no log of ours may hold a Twilio id of
an anonymous call (storage/anonymity.py). The path is logged as it arrived, still percent-encoded, so
`/ivr/x%0A...` cannot forge a second log line. No referer either (it would carry a query string too).

Gunicorn also reads this file by default from the directory it starts in, so the console's gunicorn
(started beside the line's by the Procfile and scripts/run) logs its requests the same way, and refuses
to start on a schema that is not the code's as the line's does (on_starting).
"""
from gunicorn.glogging import Logger


class AccessLogWithoutQuery(Logger):
    """Gunicorn's logger, with the request line (%(r)s) and the path (%(U)s) cut before any query string."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        path = (environ.get("RAW_URI") or "").split("?", 1)[0].split("#", 1)[0] or "-"
        atoms["r"] = f"{environ.get('REQUEST_METHOD')} {path} {environ.get('SERVER_PROTOCOL')}"
        atoms["U"], atoms["q"], atoms["f"] = path, "-", "-"
        return atoms


logger_class = AccessLogWithoutQuery
# Last, the request's time in gunicorn in microseconds (%(D)s: from the request read to the response
# written), so a slow answer can be told from a slow network or a wait for a free thread.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(a)s" %(D)s'


# --- metrics (observability.py) -------------------------------------------------------------------------
# The line's workers each count in files of one folder (prometheus-client's multiprocess mode) and the
# master serves their sum on HOTLINE_METRICS_ADDRESS, so a scrape sees every worker, not whichever answered.
# Only for the line's app: the console's gunicorn reads this file too, and serves no metrics.
_metrics = {"dir": None, "own": False}
_worker = {"process": None}


def on_starting(server):
    import tempfile
    from pathlib import Path

    from settings import metrics_from_process_env, share_metrics_dir

    _refuse_a_schema_not_the_code_s(server)
    if not _is_the_line(server):
        return
    address, folder = metrics_from_process_env()
    if address is None:
        return
    if folder is None:  # a fresh folder per start: counts left by an earlier run would be summed in
        folder, _metrics["own"] = Path(tempfile.mkdtemp(prefix="hotline-metrics-")), True
        share_metrics_dir(folder)  # before any worker is forked, or imports prometheus-client
    else:
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    _metrics["dir"] = folder


# --- the schema (storage/migrate.py) -----------------------------------------------------------------------
# Each worker checks, as it builds the app, that the database and the key store are at this code's heads
# (app.py, console/wiring.py), and one that raises makes the master stop ("Worker failed to boot", exit 3),
# but with each worker's traceback, and after the embedded worker's process was started. The master looks
# first, before it binds, forks or starts anything: a RuntimeError from this hook is printed by gunicorn as
# one "Error: ..." line on stderr, and gunicorn exits with status 1.

def _refuse_a_schema_not_the_code_s(server) -> None:
    from settings import ConfigError

    if _is_the_line(server):
        from settings import Settings as settings_class

        who = "the line"
    elif _app_uri(server).startswith("console:"):
        from console.settings import ConsoleSettings as settings_class

        who = "the console"
    else:
        return
    try:
        settings = settings_class.from_env()
    except ConfigError:
        return  # the workers say what is missing, as they always have
    from storage.migrate import SchemaMismatch, check_stores_at_start

    try:
        check_stores_at_start(settings.database_url, settings.key_store_url)
    except SchemaMismatch as error:
        raise RuntimeError(f"{who} cannot start: {error}") from None


def _app_uri(server) -> str:
    return str(getattr(server.app, "app_uri", "") or "")


def _is_the_line(server) -> bool:
    # The line's app, or the fault and soak runs' wrapper of it (benchmarks/faultline.py), never the console's
    # nor the load run's bare endpoint.
    return _app_uri(server).startswith(("app:", "benchmarks.faultline:"))


def when_ready(server):
    if _metrics["dir"] is not None:
        from observability import serve_gunicorn_master
        from settings import metrics_from_process_env

        serve_gunicorn_master(metrics_from_process_env()[0], _metrics["dir"])
    # The embedded worker: one process beside the web processes, started before they are forked so they
    # inherit where to wake it (jobs/worker_process.py). Not for the console, nor with Celery or none.
    from settings import worker_beside_gunicorn

    if _is_the_line(server) and worker_beside_gunicorn():
        from jobs.worker_process import WorkerProcess

        # `flask --app app`; a wrapper's own factory, as gunicorn was given it, so its settings apply there too.
        uri = _app_uri(server)
        _worker["process"] = WorkerProcess.for_the_line("app" if uri.startswith("app:") else uri, on_exit=_forget_metrics_of)
        _worker["process"].start()


def _forget_metrics_of(pid: int) -> None:
    if _metrics["dir"] is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(_metrics["dir"]))


# --- the interpreter lock ---------------------------------------------------------------------------------
# A web process's 8 threads share one interpreter lock. A thread whose database round trip has come back
# waits for it until the thread running Python lets go, at the latest after the switch interval: Python's
# 5 ms by default, paid again after each of a webhook's 3 to 8 round trips on PostgreSQL. 1 ms, in every
# worker of this gunicorn (the line's, the bare endpoint's in benchmarks/load.py, the console's).
SWITCH_INTERVAL_SECONDS = 0.001


def post_worker_init(worker):
    import sys

    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


def child_exit(server, worker):
    _forget_metrics_of(worker.pid)


def on_exit(server):
    if _worker["process"] is not None:
        _worker["process"].stop()
    if _metrics["own"]:
        import shutil

        shutil.rmtree(_metrics["dir"], ignore_errors=True)

