"""Faults, each shown to lose no report.  Run: python -m benchmarks.faults [--quick] [--only NAME]

Each fault gets a line of its own: gunicorn with the Procfile's settings on 127.0.0.1, the embedded
worker (or Celery where said), a FakeTwilio on 127.0.0.1, whole signed calls from the simulator.
Callers leave reports before, during and after the fault; then the run waits until every report the
caller finished is kept (its case there, each take sealed once and deleted at Twilio), Twilio (the
fake) holds no recording, every call's record there is deleted and no job waits.

  worker-killed    a store job held mid-download; the embedded worker's process running it gets SIGKILL
                   (gunicorn starts another; the job's owner is dead, so it is taken over at once)
  hotline-killed   SIGKILL to gunicorn's master and workers with takes not yet stored, then started again
  postgres-down    the line on PostgreSQL; the server stopped for 30 s (10 s --quick) while calls come in
  redis-down       HOTLINE_WORKER=celery: the broker (and the per-caller limit's store) stopped while
                   calls come in; a Celery worker process beside the line
  media-500s       Twilio's media answers 500, then times out (the line's Twilio timeout set to 2 s here)
  deletes-refused  Twilio refuses deletes of recordings and call records (400, error 20009), then accepts
  disk-full        the blob folder (HOTLINE_BLOB_STORE=folder) on a 2 MB tmpfs filled to the last byte
                   while takes are stored; then space is freed

"recovered" is the time from the end of the fault (or the last call, where the fault is in Twilio's
answers) until everything above is true. Exit status 1 if any report is lost, any answer is a 5xx
that was not a callback told to try again while its database was down, or a fault does not recover.
--quick runs four faults at a time (each on its own line, ports and FakeTwilio; they mostly wait), so
its recovery times carry the others' load; the full form runs them one after another.
Transcription is off here (benchmarks/soak.py runs it): a fault's jobs are the store and the deletes.
Two waits are shortened for the run (benchmarks/faultline.py): Twilio's minute before a call's record
may be deleted, and the 5 s retry back-off (0.5 s here).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from benchmarks.faultline import (ACCOUNT_SID, Ledger, Line, StoppablePostgres, StoppableRedis, new_report,
                                  running_job_owner_pid)

ROOT = Path(__file__).resolve().parents[1]
SETTLE_TIMEOUT = 180.0
NOT_FINAL_BODY = json.dumps({"code": 20009, "message": "Cannot delete this resource before it is complete",
                             "more_info": "https://www.twilio.com/docs/errors/20009", "status": 400})


@dataclass
class Outcome:
    name: str
    what: str
    reports: int = 0
    takes: int = 0
    turned_away: int = 0  # calls that did not finish (heard an apology, or cut off by the fault)
    lost: int = 0
    duplicates: int = 0
    recovered: float | None = None
    errors_5xx: int = 0
    retry_503s: int = 0  # 503 to a callback while the database was down: "try again", by design
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.errors_5xx == 0 and self.recovered is not None


class Run:
    """One fault's world: a workspace folder, a FakeTwilio, the auth token, the calls' ledger."""

    def __init__(self, workspace: Path, name: str, **fake_options):
        from simulator.fake_twilio import FakeTwilio

        self.workspace, self.name = workspace, name
        self.token = secrets.token_hex(16)
        self.fake = FakeTwilio(ACCOUNT_SID, self.token, **fake_options).start()
        self.ledger = Ledger()
        self.turned_away = 0
        self.numbers = iter(range(10**6))
        self.lock = threading.Lock()
        from simulator.audio import tone_wav

        self.take = tone_wav(2.0)

    def number(self) -> str:
        with self.lock:
            return f"+4477009{next(self.numbers):05d}"

    def report(self, line: Line, pause: float = 0.0) -> bool:
        try:
            self.ledger.add(new_report(line.simulator(self.fake, self.token), self.number(), self.take, pause))
            return True
        except Exception:  # an apology, a refused callback, a connection refused: the caller did not finish
            with self.lock:
                self.turned_away += 1
            return False

    def reports(self, line: Line, count: int, pause: float = 0.0) -> None:
        for _ in range(count):
            self.report(line, pause)

    def stream(self, line: Line, stop: threading.Event, callers: int = 2, pause: float = 0.3) -> list[threading.Thread]:
        """Callers leaving reports one after another until stop is set (bounded: 10 minutes)."""
        deadline = time.monotonic() + 600

        def caller():
            while not stop.is_set() and time.monotonic() < deadline:
                if not self.report(line, pause):
                    time.sleep(1.0)  # turned away: the caller tries again a moment later

        threads = [threading.Thread(target=caller, daemon=True) for _ in range(callers)]
        for thread in threads:
            thread.start()
        return threads

    def finish(self, outcome: Outcome, line: Line, recovered_from: float, *, retry_503_allowed: bool = False) -> Outcome:
        seconds, check = self.ledger.settle(line.database_url, self.fake, SETTLE_TIMEOUT)
        outcome.recovered = None if seconds is None else time.monotonic() - recovered_from
        outcome.reports, outcome.takes, outcome.lost, outcome.duplicates = check.reports, check.takes, check.lost, check.duplicates
        outcome.turned_away = self.turned_away
        if seconds is None:
            outcome.notes.append(f"not settled in {SETTLE_TIMEOUT:.0f} s: at Twilio {check.at_twilio}, call records "
                                 f"{check.call_records_left}, jobs open {check.jobs_open}, failed {check.jobs_failed}")
        outcome.notes.extend(check.examples)
        if check.unfinished_takes:
            outcome.notes.append(f"{check.unfinished_takes} takes of calls cut off before their reference were "
                                 "kept too (stored and deleted at Twilio)")
        for where, count in line.server_errors().items():
            status, path = where.split(" ", 1)
            if retry_503_allowed and status == "503" and path in ("/ivr/status", "/ivr/recording-status"):
                outcome.retry_503s += count
            else:
                outcome.errors_5xx += count
                outcome.notes.append(f"{count} x {where}")
        return outcome

    def close(self) -> None:
        self.fake.stop()


# --- the faults ------------------------------------------------------------------------------------------

def worker_killed(workspace: Path, quick: bool) -> Outcome:
    outcome = Outcome("worker-killed", "SIGKILL to the worker process running a store job")
    run = Run(workspace, "worker-killed")
    line = Line(workspace, "worker-killed", run.token, run.fake, HOTLINE_TRANSCRIPTION="off")
    try:
        line.start()
        run.fake.delay_next("GET", "/Recordings/", 6.0, times=1)  # the first store job is held mid-download
        run.reports(line, 3)
        pid, deadline = None, time.monotonic() + 20
        while pid is None and time.monotonic() < deadline:
            pid = running_job_owner_pid(line.database_url)
            time.sleep(0.1)
        if pid is None:
            outcome.notes.append("no running store job was seen to kill")
            return run.finish(outcome, line, time.monotonic())
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        outcome.notes.append(f"killed process {pid} mid-download; gunicorn's master started it again")
        run.reports(line, 2)
        outcome = run.finish(outcome, line, killed)
        downloads = sum(1 for entry in run.fake.requests("GET") if "/Recordings/" in entry.path)
        outcome.notes.append(f"{downloads} downloads answered for {outcome.takes} takes (the held one answers its "
                             "dead worker 6 s on)")
        return outcome
    finally:
        line.stop()
        run.close()


def hotline_killed(workspace: Path, quick: bool) -> Outcome:
    outcome = Outcome("hotline-killed", "SIGKILL to gunicorn and its workers, then started again")
    run = Run(workspace, "hotline-killed")
    # The call that finds the line down never reaches it: the Twilio sweep deletes its record (margin as postgres-down's).
    line = Line(workspace, "hotline-killed", run.token, run.fake, HOTLINE_TRANSCRIPTION="off", sweep_settle=3.0,
                HOTLINE_TWILIO_SWEEP_SECONDS="3", HOTLINE_MAX_RECORDING_SECONDS="10")
    try:
        line.start()
        # Both workers' downloads held (one job thread each): takes not yet stored when the power goes.
        run.fake.delay_next("GET", "/Recordings/", 8.0, times=2)
        run.reports(line, 4)
        line.kill()
        killed = time.monotonic()
        run.fake.clear_faults()
        refused = 0 if run.report(line) else 1  # a caller while it is down: Twilio cannot reach the line
        restart = line.start()
        run.reports(line, 2)
        outcome.notes.append(f"restarted and answering in {restart:.1f} s; {refused} call while down not answered")
        return run.finish(outcome, line, killed)
    finally:
        line.stop()
        run.close()


def postgres_down(workspace: Path, quick: bool) -> Outcome:
    down_for = 10.0 if quick else 30.0
    outcome = Outcome("postgres-down", f"PostgreSQL stopped for {down_for:.0f} s while calls come in")
    run = Run(workspace, "postgres-down")
    postgres = StoppablePostgres()
    try:
        return _postgres_down(workspace, outcome, run, postgres, down_for)
    finally:
        run.close()
        postgres.stop()


def _postgres_down(workspace: Path, outcome: Outcome, run: "Run", postgres: StoppablePostgres, down_for: float) -> Outcome:
    # Calls cut off by the outage, whose callbacks the line could not take, leave their takes and call
    # records at Twilio: the Twilio sweep finds them. Its margin is 10 minutes after the longest take;
    # here 3 s after a 10 s take (HOTLINE_MAX_RECORDING_SECONDS' least), every 3 s.
    line = Line(workspace, "postgres-down", run.token, run.fake, HOTLINE_TRANSCRIPTION="off",
                database_url=postgres.server.new_database(), sweep_settle=3.0, HOTLINE_TWILIO_SWEEP_SECONDS="3",
                HOTLINE_MAX_RECORDING_SECONDS="10")
    try:
        line.start()
        stop = threading.Event()
        threads = run.stream(line, stop, callers=2, pause=0.3)
        time.sleep(3)
        postgres.halt()
        time.sleep(down_for)
        postgres.resume()
        resumed = time.monotonic()
        before = len(run.ledger.reports)
        while len(run.ledger.reports) == before and time.monotonic() - resumed < 60:
            time.sleep(0.1)
        first = time.monotonic() - resumed
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(60)
        outcome.notes.append(f"first report finished {first:.1f} s after PostgreSQL was back")
        return run.finish(outcome, line, resumed, retry_503_allowed=True)
    finally:
        line.stop()


def redis_down(workspace: Path, quick: bool) -> Outcome:
    down_for = 5.0 if quick else 30.0
    outcome = Outcome("redis-down", f"Redis (Celery's broker, the limit's store) stopped {down_for:.0f} s")
    run = Run(workspace, "redis-down")
    redis = StoppableRedis(workspace / "redis")
    try:
        return _redis_down(workspace, outcome, run, redis, down_for)
    finally:
        run.close()
        redis.stop()


def _redis_down(workspace: Path, outcome: Outcome, run: "Run", redis: StoppableRedis, down_for: float) -> Outcome:
    line = Line(workspace, "redis-down", run.token, run.fake, HOTLINE_TRANSCRIPTION="off",
                HOTLINE_WORKER="celery", CELERY_BROKER_URL=redis.url, HOTLINE_SWEEP_SECONDS="1")
    log = open(workspace / "celery.log", "ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "--app", "benchmarks.faultline_celery", "worker", "--pool", "prefork",
         "--concurrency", "1", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
        env=line.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        line.start()
        run.reports(line, 2)
        redis.halt()
        halted = time.monotonic()
        run.reports(line, 3)
        outcome.notes.append(f"3 calls while Redis was down took {time.monotonic() - halted:.1f} s")
        time.sleep(max(0.0, down_for - (time.monotonic() - halted)))
        redis.resume()
        resumed = time.monotonic()
        run.reports(line, 1)
        return run.finish(outcome, line, resumed)
    finally:
        line.stop()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)
        log.close()


def media_500s(workspace: Path, quick: bool) -> Outcome:
    outcome = Outcome("media-500s", "Twilio's media: 500 x4, then 2 requests past the 2 s timeout")
    run = Run(workspace, "media-500s")
    line = Line(workspace, "media-500s", run.token, run.fake, HOTLINE_TRANSCRIPTION="off", twilio_timeout=2.0)
    try:
        line.start()
        run.fake.fail_next("GET", "/Recordings/", 500, times=4)
        run.fake.delay_next("GET", "/Recordings/", 4.0, times=2)
        run.reports(line, 3)
        last_call = time.monotonic()
        outcome = run.finish(outcome, line, last_call)
        answered = [entry for entry in run.fake.requests("GET") if "/Recordings/" in entry.path]
        outcome.notes.append(f"{sum(1 for e in answered if e.status == 500)} downloads answered 500; "
                             f"{len(answered)} downloads in all")
        return outcome
    finally:
        line.stop()
        run.close()


def deletes_refused(workspace: Path, quick: bool) -> Outcome:
    outcome = Outcome("deletes-refused", "deletes refused (400, 20009) x3 each, calls final after 3 s")
    run = Run(workspace, "deletes-refused", call_final_after=3.0)
    line = Line(workspace, "deletes-refused", run.token, run.fake, HOTLINE_TRANSCRIPTION="off")
    try:
        line.start()
        run.fake.fail_next("DELETE", "/Recordings/", 400, times=3, body=NOT_FINAL_BODY)
        run.fake.fail_next("DELETE", "/Calls/", 400, times=3, body=NOT_FINAL_BODY)
        run.reports(line, 3)
        last_call = time.monotonic()
        outcome = run.finish(outcome, line, last_call)
        refused = [entry for entry in run.fake.requests("DELETE") if entry.status == 400]
        outcome.notes.append(f"{len(refused)} deletes refused before they were accepted")
        return outcome
    finally:
        line.stop()
        run.close()


def disk_full(workspace: Path, quick: bool) -> Outcome:
    outcome = Outcome("disk-full", "the blob folder's filesystem (tmpfs, 2 MB) full while takes are stored")
    run = Run(workspace, "disk-full")
    line = Line(workspace, "disk-full", run.token, run.fake, HOTLINE_TRANSCRIPTION="off", HOTLINE_BLOB_STORE="folder")
    blobs = line.data_dir / "blobs"
    blobs.mkdir(mode=0o700)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(blobs)],
                             capture_output=True).returncode == 0 if os.geteuid() == 0 else False
    if not mounted:
        outcome.notes.append("not run: mounting a tmpfs needs root here (nothing simulated)")
        run.close()
        return outcome
    try:
        filler = blobs / "filler"
        with open(filler, "wb", buffering=0) as handle:  # to the last byte: the next write fails with ENOSPC
            try:
                for _ in range(4096):
                    handle.write(b"\0" * 4096)
            except OSError:
                pass
        line.start()
        run.reports(line, 3)
        time.sleep(3)
        check = run.ledger.check(line.database_url, run.fake)
        kept_at_twilio = sum(1 for r in run.ledger.reports.values() for sid in r.takes if sid in run.fake.recordings)
        outcome.notes.append(f"while full: {kept_at_twilio} of {check.takes} takes still at Twilio (its copy kept), "
                             f"{_failed_attempts(line.database_url)} store jobs had failed (ENOSPC) and waited to retry")
        filler.unlink()
        freed = time.monotonic()
        run.reports(line, 1)
        return run.finish(outcome, line, freed)
    finally:
        line.stop()
        subprocess.run(["umount", str(blobs)], capture_output=True)
        run.close()


def _failed_attempts(database_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM jobs WHERE kind = 'store-recording' "
                                           "AND last_error IS NOT NULL")).scalar() or 0
    finally:
        engine.dispose()


FAULTS: dict[str, Callable[[Path, bool], Outcome]] = {
    "worker-killed": worker_killed, "hotline-killed": hotline_killed, "postgres-down": postgres_down,
    "redis-down": redis_down, "media-500s": media_500s, "deletes-refused": deletes_refused, "disk-full": disk_full,
}


def table(outcomes: Sequence[Outcome]) -> None:
    print(f"\n{'fault':16} {'reports':>7} {'takes':>6} {'away':>5} {'lost':>5} {'dupl':>5} {'5xx':>4} "
          f"{'503*':>5} {'recovered':>10}  verdict")
    for o in outcomes:
        recovered = "never" if o.recovered is None else f"{o.recovered:8.1f} s"
        print(f"{o.name:16} {o.reports:7} {o.takes:6} {o.turned_away:5} {o.lost:5} {o.duplicates:5} {o.errors_5xx:4} "
              f"{o.retry_503s:5} {recovered:>10}  {'ok' if o.ok else 'FAILED'}")
    print("\nreports: finished by the caller (heard their reference); away: calls that did not finish (an apology, "
          "or no answer while the line was down);\nlost: a finished report not stored, sealed and deleted at Twilio; "
          "dupl: takes stored more than once; 5xx: server errors;\n503*: callbacks told to try again while the "
          "database was down (by design); recovered: from the end of the fault until all is stored and deleted.")
    for o in outcomes:
        print(f"  {o.name}: {o.what}" + "".join(f"\n      {note}" for note in o.notes))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter outages (the CI form)")
    parser.add_argument("--only", action="append", choices=sorted(FAULTS), help="run only this fault (repeatable)")
    parser.add_argument("--parallel", type=int, help="faults run at once, each on its own line and ports "
                        "(default 1; 4 with --quick: they mostly wait, for outages and back-offs)")
    arguments = parser.parse_args(argv)
    parallel = max(1, min(len(FAULTS), arguments.parallel or (4 if arguments.quick else 1)))
    started = time.monotonic()
    names = list(arguments.only or FAULTS)
    results: dict[str, Outcome] = {}
    with tempfile.TemporaryDirectory(prefix="hotline-faults-") as folder:
        def one(name: str) -> None:
            print(f"[{name}] ...", flush=True)
            begun = time.monotonic()
            workspace = Path(folder) / name
            workspace.mkdir()
            try:
                results[name] = FAULTS[name](workspace, arguments.quick)
            except Exception as error:
                # The last line naming an error says most (a server's log tail is in the message).
                lines = [line for line in str(error).splitlines() if "Error" in line or "error" in line]
                results[name] = Outcome(name, "the run itself failed",
                                        notes=[f"{type(error).__name__}: {(lines or [str(error)])[-1]}"[:400]])
            print(f"[{name}] {time.monotonic() - begun:.1f} s", flush=True)

        # The longest first, so the others fill in beside it.
        order = sorted(names, key=lambda name: name != "postgres-down" and name != "redis-down")
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(one, order))
    outcomes = [results[name] for name in names]
    print(f"\n{parallel} at a time")
    table(outcomes)
    print(f"\nwhole run: {time.monotonic() - started:.0f} s")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
