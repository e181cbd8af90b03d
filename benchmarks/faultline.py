"""Shared by benchmarks/faults.py and benchmarks/soak.py: the line under gunicorn (benchmarks/load.py's
servers and environment), whole signed calls that leave a report or add a take to one, and the ledger
that says, from the database and from Twilio (the fake), whether every finished report was kept.

A report is *kept* when its case exists, each take the caller finished is a row with sealed audio
(once: no second sealed copy) and is deleted at Twilio. Anything less is *lost*. Takes are counted
per case, not matched by RecordingSid: the line erases every SID once Twilio's record of the call is
gone (jobs/calls.py), so afterwards nothing of ours can name them. (A take of a call-back cut off by a
fault, kept anyway, is counted apart; it could stand in for a finished take of the same case that
was lost. No run has shown both at once.)

Waits the line owes Twilio are shortened here, and only here (the app factory below, which gunicorn
loads instead of app:create_app): the first try of deleting a call's record (a minute after the call
ends, jobs/calls.py) and the retry back-off (5 s, doubling); optionally the timeout of the line's
requests to Twilio (30 s) and the Twilio sweep's margin (10 minutes). Everything else is the line as
the Procfile runs it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from benchmarks.load import (ACCOUNT_SID, PUBLIC_BASE_URL, AccessEntry, Server, access_entries, hotline_env,
                             procfile_web_command)
from tests.support.processes import RedisServer

__all__ = ["ACCOUNT_SID", "PUBLIC_BASE_URL", "hotline_app", "Line", "Ledger", "Report", "new_report", "call_back"]

FAST_RETRY_SECONDS = 0.5


def shorten_waits(retry_base: float = FAST_RETRY_SECONDS) -> None:
    from jobs import calls

    calls.FIRST_TRY = timedelta(0)
    calls.RETRY_BASE_SECONDS = retry_base


def hotline_app(twilio_timeout: float = 30.0, retry_base: float = FAST_RETRY_SECONDS, sweep_settle: float | None = None):
    """gunicorn "benchmarks.faultline:hotline_app(2.0)": the line's web process with the waits shortened.
    sweep_settle: the Twilio sweep's margin (10 minutes, jobs/sweep.py) before it takes in a recording or
    deletes a call record no callback told the line about, for runs that wait for the sweep."""
    import dataclasses

    from app import create_app

    shorten_waits(retry_base)
    if sweep_settle is not None:
        from jobs import sweep

        sweep.SETTLE_MARGIN = timedelta(seconds=sweep_settle)
    app = create_app(start_worker=True)
    workshop = app.extensions["hotline"].workshop
    workshop.twilio.timeout = twilio_timeout
    workshop.settings = dataclasses.replace(workshop.settings, retry_base_seconds=retry_base)
    return app


# --- the line under gunicorn ---------------------------------------------------------------------------

_SETUP = threading.Lock()

class Line:
    """The line's web process (gunicorn, the Procfile's flags, the embedded worker unless told otherwise),
    restartable with the same environment, its log kept across restarts."""

    def __init__(self, workspace: Path, name: str, token: str, fake, *, model: Path | None = None,
                 database_url: str | None = None, twilio_timeout: float = 30.0, sweep_settle: float | None = None,
                 **extra_env: str):
        from tests.support.processes import free_port

        with _SETUP:  # the migrations (alembic's context) are not for threads at once
            self.env, self.database_url = hotline_env(workspace, name, token, fake, model, database_url)
        self.env.update(extra_env)
        self.data_dir = Path(self.env["HOTLINE_DATA_DIR"])
        self.log_path = workspace / f"{name}.log"
        self.port = free_port()
        self.spec = f"benchmarks.faultline:hotline_app({float(twilio_timeout)!r}, sweep_settle={sweep_settle!r})"
        self.server: Server | None = None
        self.name = name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> float:
        started = time.monotonic()
        self.server = Server(self.name, procfile_web_command(self.port, self.spec), self.env, self.log_path, self.port)
        self.server.wait_ready(timeout)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL to gunicorn's master and its workers at once: the machine lost power."""
        os.killpg(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait(10)
        self.server._log.close()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def statuses(self) -> dict[int, int]:
        """Answers by HTTP status, from gunicorn's access log (every run of this line)."""
        return dict(Counter(entry.status for entry in self._access_log()))

    def server_errors(self) -> dict[str, int]:
        """5xx answers by (status, path), from the access log."""
        return dict(Counter(f"{entry.status} {entry.path}" for entry in self._access_log() if entry.status >= 500))

    def _access_log(self) -> list[AccessEntry]:
        return access_entries(self.log_path.read_text(errors="replace") if self.log_path.exists() else "")

    def simulator(self, fake, token: str):
        from simulator.call import CallSimulator
        from simulator.transport import HttpTransport

        return CallSimulator(HttpTransport(self.url), public_base_url=PUBLIC_BASE_URL, account_sid=ACCOUNT_SID,
                             auth_token=token, fake_twilio=fake)


def running_job_owner_pid(database_url: str) -> int | None:
    """The process id in the owner token of a running job (jobs/owners.py: machine/pid/start/host/token)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            owner = connection.execute(text("SELECT owner FROM jobs WHERE state = 'running' AND owner IS NOT NULL "
                                            "AND kind = 'store-recording' LIMIT 1")).scalar()
    finally:
        engine.dispose()
    if not owner:
        return None
    parts = owner.split("/")
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


# --- the calls -----------------------------------------------------------------------------------------

@dataclass
class Report:
    reference: str
    pin: str
    number: str
    takes: list[str] = field(default_factory=list)  # RecordingSids of the takes the caller finished
    call_sids: list[str] = field(default_factory=list)


class CallFailed(Exception):
    pass


def _digits_between(heard: str, start: str, end: str) -> str:
    try:
        return "".join(ch for ch in heard.split(start, 1)[1].split(end, 1)[0] if ch.isdigit())
    except IndexError:
        return ""


def _pause(seconds: float) -> None:
    if seconds:
        time.sleep(seconds)


class _CutOff:
    """A call the fault cut off (the line unreachable, an apology): the caller hangs up, so Twilio ends
    the call, as it would, and keeps its record until the line deletes it (the Twilio sweep finds calls
    whose status callback never came through)."""

    def __init__(self, simulator):
        self.simulator, self.call = simulator, None

    def __enter__(self) -> "_CutOff":
        return self

    def __exit__(self, kind, error, trace) -> None:
        call = self.call
        if call is None and getattr(self.simulator, "calls", None):
            call = self.simulator.calls[-1]  # the dial itself failed: the call had begun at Twilio all the same
        if error is None or call is None:
            return
        _hang_up(call)
        fake = call.fake_twilio
        record = fake.calls.get(call.call_sid) if fake is not None else None
        if record is not None and record.ended_at is None:
            fake.end_call(call.call_sid)


def new_report(simulator, number: str, take: bytes, pause: float = 0.0, **identity) -> Report:
    """Dial; 1 (new report); 1 (anonymous); 3 (category); a take, then #; 1 (keep it); hear the reference
    and PIN; hang up. The report is finished once the caller heard its reference."""
    with _CutOff(simulator) as cut_off:
        return _new_report(simulator, cut_off, number, take, pause, **identity)


def _new_report(simulator, cut_off: _CutOff, number: str, take: bytes, pause: float, **identity) -> Report:
    call = cut_off.call = simulator.dial(from_=number, **identity)
    for keys in ("1", "1", "3"):
        _pause(pause)
        call.presses(keys)
    _pause(pause)
    call.says(take, then="#")
    _pause(pause)
    call.presses("1")
    heard = " ".join(call.heard)
    reference, pin = _digits_between(heard, "reference is", "Your PIN"), _digits_between(heard, "PIN is", "To hear")
    if not (reference and pin):
        raise CallFailed(f"no reference heard; last: {call.heard[-1:]}")
    _hang_up(call)
    return Report(reference, pin, number, list(call.recording_sids), [call.call_sid])


def _hang_up(call) -> None:
    """The report is the caller's once they heard it was kept: a hang-up the line did not hear (it was
    killed) leaves the call's status callback to the Twilio sweep, and takes nothing away."""
    try:
        if not call.is_over:
            call.hangs_up()
    except Exception:
        pass


def call_back(simulator, report: Report, take: bytes, pause: float = 0.0, **identity) -> None:
    """Dial; 2 (add to a report); the reference; the PIN; a take, then #; 1 (keep it); hang up."""
    with _CutOff(simulator) as cut_off:
        _call_back(simulator, cut_off, report, take, pause, **identity)


def _call_back(simulator, cut_off: _CutOff, report: Report, take: bytes, pause: float, **identity) -> None:
    call = cut_off.call = simulator.dial(from_=report.number, **identity)
    for keys in ("2", report.reference, report.pin):
        _pause(pause)
        call.presses(keys)
    if call.waiting_for != "recording":
        raise CallFailed(f"not unlocked; last: {call.heard[-1:]}")
    _pause(pause)
    call.says(take, then="#")
    _pause(pause)
    call.presses("1")
    if not call.recording_sids:
        raise CallFailed("no take recorded")
    report.takes.extend(call.recording_sids)
    report.call_sids.append(call.call_sid)
    _hang_up(call)


# --- the ledger ----------------------------------------------------------------------------------------

@dataclass
class Check:
    reports: int
    takes: int
    lost: int  # reports not kept: case missing, a take not stored or not deleted at Twilio
    duplicates: int  # takes stored more than once (rows or sealed items beyond those expected)
    transcripts: int
    transcribed_twice: int
    at_twilio: int  # recordings still at Twilio (the fake), of any call
    call_records_left: int  # Twilio call records not deleted
    jobs_open: int  # queued or running
    jobs_failed: int
    unfinished_takes: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        return self.lost == 0 and self.at_twilio == 0 and self.jobs_open == 0


class Ledger:
    """Reports the callers finished, checked against the database and the fake Twilio."""

    def __init__(self) -> None:
        self.reports: dict[str, Report] = {}
        self.lock = threading.Lock()

    def add(self, report: Report) -> None:
        with self.lock:
            self.reports[report.reference] = report

    def pick(self, rng) -> Report | None:
        with self.lock:
            return rng.choice(list(self.reports.values())) if self.reports else None

    @property
    def take_count(self) -> int:
        with self.lock:
            return sum(len(report.takes) for report in self.reports.values())

    def check(self, database_url: str, fake, *, transcribing: bool = False, call_records: bool = True) -> Check:
        from sqlalchemy import create_engine, text

        with self.lock:
            reports = {ref: (len(r.takes), list(r.takes)) for ref, r in self.reports.items()}
        engine = create_engine(database_url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(text(
                    "SELECT c.reference, count(r.id), "
                    "sum(CASE WHEN r.audio_item_id IS NOT NULL THEN 1 ELSE 0 END), "
                    "sum(CASE WHEN r.deleted_at_twilio THEN 1 ELSE 0 END), "
                    "sum(CASE WHEN r.transcript_item_id IS NOT NULL THEN 1 ELSE 0 END) "
                    "FROM cases c LEFT JOIN recordings r ON r.case_id = c.id AND r.decision = 'keep' "
                    "GROUP BY c.reference")).all()
                items = {(reference, kind): count for reference, kind, count in connection.execute(text(
                    "SELECT c.reference, s.kind, count(*) FROM sealed_items s JOIN cases c ON c.id = s.case_id "
                    "WHERE s.kind IN ('recording', 'transcript') GROUP BY c.reference, s.kind"))}
                jobs = dict(connection.execute(text("SELECT state, count(*) FROM jobs GROUP BY state")).all())
        finally:
            engine.dispose()
        found = {reference: (int(n or 0), int(a or 0), int(d or 0), int(t or 0)) for reference, n, a, d, t in rows}
        at_twilio = fake.recordings
        lost, duplicates, twice, unfinished, transcripts, examples = 0, 0, 0, 0, 0, []
        for reference, (expected, sids) in reports.items():
            rows_, audio, deleted, transcribed = found.get(reference, (0, 0, 0, 0))
            if audio < expected or deleted < expected or any(sid in at_twilio for sid in sids):
                lost += 1
                if len(examples) < 3:
                    examples.append(f"case {'found' if reference in found else 'missing'}: {audio}/{expected} "
                                    f"takes sealed, {deleted} deleted at Twilio")
            # A RecordingSid is unique in the database, so a take has one row at most; stored twice would
            # be a second sealed copy beside the one its row points to.
            duplicates += max(0, items.get((reference, "recording"), 0) - audio)
            twice += max(0, items.get((reference, "transcript"), 0) - transcribed)
            transcripts += min(transcribed, expected)
            # Rows beyond the takes the callers finished: a call-back cut off after its take was
            # recorded (kept by default; or taken in by the Twilio sweep).
            unfinished += max(0, rows_ - expected)
        # Takes of calls cut off before the caller heard the reference, kept in cases no ledger entry names.
        unfinished += sum(count for (reference, kind), count in items.items()
                          if kind == "recording" and reference not in reports)
        expected_takes = sum(expected for expected, _ in reports.values())
        calls_left = sum(1 for call in fake.calls.values() if not call.deleted)
        return Check(
            reports=len(reports), takes=expected_takes, lost=lost, duplicates=duplicates, transcripts=transcripts,
            transcribed_twice=twice, unfinished_takes=unfinished,
            at_twilio=len(at_twilio), call_records_left=calls_left if call_records else 0,
            jobs_open=jobs.get("queued", 0) + jobs.get("running", 0) - _call_jobs_waiting(database_url, call_records),
            jobs_failed=jobs.get("failed", 0), examples=examples)

    def settle(self, database_url: str, fake, timeout: float, *, transcribing: bool = False,
               call_records: bool = True) -> tuple[float | None, Check]:
        """Seconds until every report is kept, Twilio holds nothing and no job waits (None: not within timeout)."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            check = self.check(database_url, fake, transcribing=transcribing, call_records=call_records)
            done = check.settled and (not call_records or check.call_records_left == 0) and (
                not transcribing or check.transcripts >= check.takes)
            if done:
                return time.monotonic() - started, check
            if time.monotonic() >= deadline:
                return None, check
            time.sleep(0.5)


def _call_jobs_waiting(database_url: str, counted: bool) -> int:
    """Call-record jobs still waiting are not counted as open when call records are not being waited for."""
    if counted:
        return 0
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running') "
                                           "AND kind = 'delete-call'")).scalar() or 0
    finally:
        engine.dispose()


# --- PostgreSQL and Redis that can be stopped and started again -----------------------------------------

class StoppablePostgres:
    """tests/support/postgres.PostgresServer, with stop and start of the same data on the same port."""

    def __init__(self):
        from tests.support.postgres import PostgresServer

        self.server = PostgresServer().start()

    def halt(self) -> None:
        from tests.support.postgres import _bin

        self.server._run(_bin("pg_ctl"), "-D", str(self.server.root / "data"), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        from tests.support.postgres import _bin

        root = self.server.root
        self.server._run(_bin("pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-t", "60",
                         "start", "-o", f"-p {self.server.port} -k {root} -h 127.0.0.1 -c fsync=off "
                         "-c full_page_writes=off")

    def stop(self) -> None:
        self.server.stop()


class StoppableRedis(RedisServer):
    """A redis-server that the run stops and starts again on the same port (tests/support/processes.py)."""

    def resume(self) -> None:
        self.start()

    def stop(self) -> None:
        self.halt()
