"""How the line's webhooks hold up under load.  Run: python -m benchmarks.load [--quick] [--profile]

Two gunicorn servers started with the Procfile's `web:` settings (its flags, --config gunicorn.conf.py,
workers, threads, access log), bound to 127.0.0.1 only:

  the hotline  "app:create_app(start_worker=True)" on a fresh SQLite database, the embedded worker on
               (storing takes from a FakeTwilio on 127.0.0.1, transcribing them when the speech model
               is in the test cache), the per-caller limit on;
  the bare     a Flask app that answers each webhook path with fixed TwiML of the same shape (no
               signature check, no database), the least a Python webhook under gunicorn can cost.

Both get the same whole simulated calls (simulator/: signed as Twilio signs, TwiML followed as Twilio
follows it): dial; 1 (new report); 1 (anonymous); 3 (category); speak a take, then #; 1 (keep it);
hear the reference and PIN; hang up (then the status callback). Each call comes from its own number.

(a) paced: N calls in flight (100; 20 with --quick), 1 s between the caller's key presses: latency of
    each webhook, p50 and p99, hotline against bare;
(b) saturated: 16 callers (gunicorn's 2 workers x 8 threads) with no pauses for a fixed time:
    webhooks a second, hotline against bare, and the servers' CPU per webhook;
(c) errors: any answer that is not 2xx, any TwiML the simulator refuses, any call that fails.

Targets (issue 10): p99 <= 1.5x bare, saturated throughput >= 0.7x bare, zero errors. The client runs
in this process (threads), on the same machine: it costs CPU too, the same for both servers. Its garbage
collector is paused during each phase (`collector_paused`), which would otherwise stop every simulated
caller at once now and then, in whichever phase it fell.
--profile also runs a few hundred in-process webhooks under cProfile and prints where the time goes (d),
then the same without a profiler, each part's CPU time beside the bare endpoint's whole request (e).
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import random
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import requests

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_BASE_URL = "https://hotline.bench"
ACCOUNT_SID = "AC" + "0" * 31 + "7"
P99_TARGET, THROUGHPUT_TARGET = 1.5, 0.7
SATURATING_CALLERS = 16
MAX_SECONDS_PER_PHASE = 600  # every loop here is bounded


# --- the bare endpoint -----------------------------------------------------------------------------

def bare_app(public_base_url: str = PUBLIC_BASE_URL):
    """Fixed TwiML per path, shaped like the hotline's answers, so the simulator makes the same calls."""
    return _fixed_twiml_app("bare", public_base_url)


def checked_app(public_base_url: str = PUBLIC_BASE_URL, auth_token: str | None = None, folder: Path | None = None):
    """The bare endpoint's answers after the two things no correct webhook of the line can skip: Twilio's
    signature checked (ivr/signature.py, as the line checks it: 403 if it fails) and one row written and
    committed (the call's sid and the step, with sqlite3 itself, in WAL mode with synchronous=NORMAL as
    storage/db.py sets it). A reference between the bare endpoint and the line, not a target: each web
    process writes a database file of its own (HOTLINE_DATA_DIR/checked-PID.db), so it never waits on
    another's lock, and it keeps nothing else of a report. The token and the folder come from the line's
    environment variables (TWILIO_AUTH_TOKEN, HOTLINE_DATA_DIR) unless given."""
    import sqlite3

    from flask import abort, request

    from ivr.signature import twilio_signature_is_valid

    auth_token = auth_token or os.environ["TWILIO_AUTH_TOKEN"]
    folder = folder or Path(os.environ["HOTLINE_DATA_DIR"])
    local = threading.local()

    def connection() -> sqlite3.Connection:
        if getattr(local, "pid", None) != os.getpid():  # a forked worker opens its own
            local.pid = os.getpid()
            local.connection = sqlite3.connect(folder / f"checked-{os.getpid()}.db", timeout=5, isolation_level=None)
            local.connection.execute("PRAGMA journal_mode=WAL")
            local.connection.execute("PRAGMA synchronous=NORMAL")
            local.connection.execute("CREATE TABLE IF NOT EXISTS webhooks (id INTEGER PRIMARY KEY, call_sid TEXT, step TEXT)")
        return local.connection

    def check_and_write(step: str) -> None:
        if not twilio_signature_is_valid(request, public_base_url, auth_token):
            abort(403)
        database = connection()
        database.execute("BEGIN")
        database.execute("INSERT INTO webhooks (call_sid, step) VALUES (?, ?)", (request.form.get("CallSid", ""), step))
        database.execute("COMMIT")

    return _fixed_twiml_app("checked", public_base_url, first=check_and_write)


def _fixed_twiml_app(name: str, public_base_url: str, first: Callable[[str], None] | None = None):
    from flask import Flask, Response

    answers = _fixed_answers(public_base_url)
    app = Flask(name)

    @app.post("/ivr/<step>")
    def webhook(step: str):
        if first is not None:
            first(step)
        if step in ("recording-status", "status"):
            return Response(status=204)
        return Response(answers.get(step, answers["read-back"]), mimetype="text/xml")

    @app.get("/healthz")
    def healthz():
        return "ok"

    return app


def _fixed_answers(public_base_url: str) -> dict[str, str]:
    base = public_base_url.rstrip("/")

    def gather(step: str, text: str) -> str:
        return (f'<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="{base}/ivr/{step}" '
                f'actionOnEmptyResult="false" input="dtmf" method="POST" numDigits="1" timeout="6">'
                f'<Say language="en-GB" voice="Polly.Amy">{text}</Say></Gather>'
                f'<Redirect method="POST">{base}/ivr/{step}</Redirect></Response>')

    answers = {
        "voice": gather("welcome", "Welcome. To make a new report, press 1."),
        "welcome": gather("anonymity", "To stay anonymous, press 1."),
        "anonymity": gather("category", "You are anonymous. What is your report about? Press 3."),
        "category": (f'<?xml version="1.0" encoding="UTF-8"?><Response><Say language="en-GB" voice="Polly.Amy">'
                     f'After the tone, please tell us what happened.</Say><Record action="{base}/ivr/recorded" '
                     f'finishOnKey="#" maxLength="600" method="POST" playBeep="true" '
                     f'recordingStatusCallback="{base}/ivr/recording-status" recordingStatusCallbackEvent='
                     f'"completed absent" recordingStatusCallbackMethod="POST" timeout="10" trim="trim-silence" />'
                     f'<Redirect method="POST">{base}/ivr/recorded</Redirect></Response>'),
        "recorded": gather("after-recording", "Thank you. To keep your report, press 1."),
        "after-recording": gather("read-back", "Your case reference is 1, 2, 3, 4. To hear it again, press 1."),
        "read-back": ('<?xml version="1.0" encoding="UTF-8"?><Response><Say language="en-GB" voice="Polly.Amy">'
                      'Thank you for calling. Goodbye.</Say><Hangup /></Response>'),
    }
    return answers


# --- the servers -----------------------------------------------------------------------------------

BARE_AGAIN = "bare again"  # the bare endpoint's second turn, at the end of the run
CHECKED = "checked"  # the bare endpoint with the signature check and one committed row: a reference, not judged
GUNICORN_OVERRIDES: dict[str, str] = {}  # --workers/--threads from the command line, for experiments


def procfile_web_command(port: int, app_spec: str | None = None) -> list[str]:
    """The Procfile's web: command, bound to 127.0.0.1:port, with another app in place of the line's."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    words = shlex.split(line[len("web:"):])
    command = []
    for index, word in enumerate(words):
        if "$PORT" in word:
            word = f"127.0.0.1:{port}"  # never 0.0.0.0: the benchmark's servers take no outside traffic
        elif index > 0 and words[index - 1] in GUNICORN_OVERRIDES:
            word = GUNICORN_OVERRIDES[words[index - 1]]
        command.append(word)
    if app_spec is not None:
        command[-1] = app_spec
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return [str(gunicorn) if command[0] == "gunicorn" else command[0], *command[1:]]


class Server:
    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path, port: int):
        self.name, self.port, self.log_path = name, port, log_path
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start in {timeout:.0f} s")

    def cpu_seconds(self) -> tuple[float, float]:
        """User + system CPU, from /proc: of gunicorn's master and its web workers; and of the embedded
        worker's process beside them (jobs/worker_process.py), with what it ran (ffmpeg) counted in."""
        web = jobs = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in [self.process.pid, *_children(self.process.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            seconds = (int(fields[11]) + int(fields[12])) / tick
            if b"jobs" in command and b"work" in command:
                jobs += seconds + (int(fields[13]) + int(fields[14])) / tick  # its waited-for children too
            else:
                web += seconds
        return web, jobs

    def log_size(self) -> int:
        self._log.flush()
        return self.log_path.stat().st_size

    def request_times(self, start: int, end: int) -> list[float]:
        """ms, from gunicorn's access log between two log sizes: each request's own time in the server
        (gunicorn.conf.py's last field), without the network or the wait for a free thread."""
        with open(self.log_path, "rb") as log:
            log.seek(start)
            text = log.read(end - start).decode(errors="replace")
        return [entry.ms for entry in access_entries(text) if entry.ms is not None]

    def server_errors(self) -> int:
        """5xx answers in gunicorn's access log."""
        return sum(1 for entry in access_entries(self.log_path.read_text(errors="replace")) if entry.status >= 500)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()


# gunicorn.conf.py's access_log_format: ... "METHOD PATH PROTOCOL" STATUS BYTES "USER AGENT" MICROSECONDS
_ACCESS_REQUEST = re.compile(r'"[A-Z]+ (\S+) HTTP/1\.[01]" (\d{3}) ')
_ACCESS_TIME = re.compile(r'" (\d+)$')


@dataclass(frozen=True)
class AccessEntry:
    path: str
    status: int
    ms: float | None  # the request's own time in gunicorn


def access_entries(text: str) -> list[AccessEntry]:
    """The requests in a piece of gunicorn's access log (other output between them is skipped)."""
    entries = []
    for line in text.splitlines():
        request = _ACCESS_REQUEST.search(line)
        if request is not None:
            took = _ACCESS_TIME.search(line)
            entries.append(AccessEntry(request[1], int(request[2]), int(took[1]) / 1000 if took else None))
    return entries


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(parts[1]) == pid:
            found.append(int(stat.parent.name))
    return found


# --- the calls ----------------------------------------------------------------------------------------

@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # ms, one per webhook
    bad_status: int = 0
    failed_calls: int = 0
    calls: int = 0
    problems: list[str] = field(default_factory=list)
    by_path: dict[str, list[float]] = field(default_factory=dict)  # the webhook's path (no query): ms
    io_stalled: float | None = None  # share of the phase some task waited on the disk (Linux PSI), if known
    cpu_stolen: float | None = None  # share of the machine's CPU time the hypervisor gave to others, if known
    in_server: list[float] = field(default_factory=list)  # ms, each request's own time in gunicorn (its access log)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ms: float, status: int, path: str = "") -> None:
        with self.lock:
            self.latencies.append(ms)
            self.by_path.setdefault(path.split("?", 1)[0], []).append(ms)
            if not 200 <= status < 300:
                self.bad_status += 1

    def failed(self, problem: str) -> None:
        with self.lock:
            self.failed_calls += 1
            if len(self.problems) < 5:
                self.problems.append(problem)


def timed_transport(base_url: str, tally: Tally):
    from simulator.transport import HttpTransport

    class Timed(HttpTransport):
        def send(self, method, public_base_url, path, form, headers):
            started = time.perf_counter()
            response = super().send(method, public_base_url, path, form, headers)
            tally.add((time.perf_counter() - started) * 1000, response.status, path)
            return response

    return Timed(base_url)


def one_call(simulator, number: str, take: bytes, pause: float) -> None:
    """A whole report: the menus, a take, the read-back, a hang-up."""
    def pause_a_moment() -> None:
        if pause:
            time.sleep(pause)

    call = simulator.dial(from_=number)
    for keys in ("1", "1", "3"):
        pause_a_moment()
        call.presses(keys)
    pause_a_moment()
    call.says(take, then="#")
    pause_a_moment()
    call.presses("1")
    if not call.hears("reference"):
        raise RuntimeError(f"unexpected at the end: {call.heard_since_last_action[-1:]}")
    pause_a_moment()
    if not call.is_over:
        call.hangs_up()


@contextmanager
def collector_paused():
    """This process's garbage collector off for a phase: collected before it, and again after it.

    A full collection of this process's heap (the simulated callers, the FakeTwilio, all that the run has
    kept) stops every caller's thread at once, and the webhooks in flight are timed as if the server had
    taken that long. In a --quick run there were three, of 26, 59 and 91 ms, longer as the heap grows,
    each landing in whichever phase it fell in: more often in the later servers' (the bare endpoint is
    measured first). Reference counting still frees nearly everything a phase makes; a phase is bounded
    (MAX_SECONDS_PER_PHASE), and so is what its cycles keep until the collection after it."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def run_calls(server: Server, fake_twilio, token: str, takes: list[bytes], *, in_flight: int, pause: float,
              calls_per_caller: int | None = None, seconds: float | None = None) -> tuple[Tally, float, tuple[float, float]]:
    """in_flight callers, each making calls one after another (a number of them, or for a time).
    Returns the tally, the wall time and the CPU seconds of the web processes and of the job process."""
    from simulator.call import CallSimulator

    tally = Tally()
    deadline = time.monotonic() + min(seconds or MAX_SECONDS_PER_PHASE, MAX_SECONDS_PER_PHASE)
    numbers = iter(range(10**7))
    numbers_lock = threading.Lock()

    def caller(index: int) -> None:
        simulator = CallSimulator(timed_transport(server.url, tally), public_base_url=PUBLIC_BASE_URL,
                                  account_sid=ACCOUNT_SID, auth_token=token, fake_twilio=fake_twilio)
        rng = random.Random(index)
        time.sleep(rng.uniform(0, pause))  # arrivals spread over the first second, not all at once
        made = 0
        while time.monotonic() < deadline and (calls_per_caller is None or made < calls_per_caller):
            with numbers_lock:
                number = f"+447700{next(numbers):06d}"[:13]
            try:
                one_call(simulator, number, takes[made % len(takes)], pause)
            except Exception as error:  # AppResponseError, TwimlError, SimulatorError, a timeout
                tally.failed(f"{type(error).__name__}: {str(error)[:160]}")
            with tally.lock:
                tally.calls += 1
            made += 1
            simulator.calls.clear()

    with collector_paused():
        log_before = server.log_size()
        (web_before, jobs_before), started, io_before = server.cpu_seconds(), time.monotonic(), io_stall_microseconds()
        ticks_before = cpu_ticks()
        threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(in_flight)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(MAX_SECONDS_PER_PHASE + 60)
        wall = time.monotonic() - started
        web_after, jobs_after = server.cpu_seconds()
        io_after, ticks_after = io_stall_microseconds(), cpu_ticks()
    time.sleep(0.2)  # the last answers' log lines, written after the answer
    tally.in_server = server.request_times(log_before, server.log_size())
    if io_before is not None and io_after is not None:
        tally.io_stalled = (io_after - io_before) / 1e6 / wall
    if ticks_before is not None and ticks_after is not None and ticks_after[1] > ticks_before[1]:
        tally.cpu_stolen = (ticks_after[0] - ticks_before[0]) / (ticks_after[1] - ticks_before[1])
    return tally, wall, (web_after - web_before, jobs_after - jobs_before)


def io_stall_microseconds() -> int | None:
    """Linux's pressure stall total for I/O ("some": time in which at least one task waited on the disk).
    The same code's p99 ranged from under bare's to 16x it within ten minutes on a shared virtual disk;
    the share of each phase stalled on I/O is printed beside it, so a run's figures can be read for what
    they are."""
    try:
        line = Path("/proc/pressure/io").read_text().splitlines()[0]
        return int(line.rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return None


def cpu_ticks() -> tuple[int, int] | None:
    """The machine's stolen and total CPU ticks (/proc/stat): on a virtual machine, time the hypervisor
    gave our cores to another guest. Seen at 8% over an hour here, in bursts: a phase that lost its cores
    so is printed as such, for its figures to be read for what they are."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return fields[7], sum(fields)
    except (OSError, IndexError, ValueError):
        return None


def _in_server(tally: Tally) -> str:
    if not tally.in_server:
        return "-"
    return f"{percentile(tally.in_server, .5):.1f} / {percentile(tally.in_server, .99):.1f}"


def _stalled(tally: Tally) -> str:
    io = "-" if tally.io_stalled is None else f"{100 * tally.io_stalled:.0f}%"
    stolen = "-" if tally.cpu_stolen is None else f"{100 * tally.cpu_stolen:.0f}%"
    return f"{io} / {stolen}"


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait_for_jobs(database_url: str, timeout: float) -> int:
    """Wait until the hotline has stored its takes (the recording jobs, not the later call-record
    deletes), so the next measurement is not sharing the CPU with them. Returns the jobs left."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    deadline = time.monotonic() + timeout
    left = 0
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                left = connection.execute(text(
                    "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running') AND kind != 'delete-call'"
                )).scalar()
            if not left:
                return 0
            time.sleep(1)
    finally:
        engine.dispose()
    return left


# --- the run -----------------------------------------------------------------------------------------

def takes_for_run(transcribing: bool) -> tuple[list[bytes], str]:
    from simulator.audio import tone_wav

    if transcribing:
        try:
            from tests.support import speech_corpus

            utterances = speech_corpus.load_utterances()[:6]
            return [speech_corpus.telephone_wav(u, "signed-integer") for u in utterances], "real speech"
        except Exception:
            pass
    return [tone_wav(2.0)], "a 2 s tone"


def model_dir() -> Path | None:
    try:
        from transcription.model import check_model, pinned_model_dir

        path = pinned_model_dir(Path.home() / ".cache" / "hotline")
        check_model(path)
        return path
    except Exception:
        return None


@dataclass
class Target:
    server: "Server"
    database_url: str | None  # the hotline's, to wait for its jobs; None for the bare endpoint
    label: str


def hotline_env(workspace: Path, name: str, token: str, fake, model: Path | None,
                database_url: str | None = None) -> tuple[dict[str, str], str]:
    from storage.crypto import write_key_pair
    from storage.migrate import upgrade_all
    from tests.support.processes import free_port

    data_dir = workspace / name
    data_dir.mkdir(mode=0o700)
    write_key_pair(data_dir / "keys", "benchmark passphrase, not a secret")
    database_url = database_url or f"sqlite:///{data_dir / 'hotline.db'}"
    upgrade_all(database_url, f"sqlite:///{data_dir / 'keystore' / 'period-keys.db'}")  # the release step
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT),
           "HOTLINE_ENV": "production", "PUBLIC_BASE_URL": PUBLIC_BASE_URL, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
           "TWILIO_AUTH_TOKEN": token, "HOTLINE_PIN_KEY": secrets.token_urlsafe(48),
           "HOTLINE_DATA_DIR": str(data_dir), "DATABASE_URL": database_url, "TWILIO_API_BASE": fake.api_base,
           "HOTLINE_WORKER": "inprocess", "HOTLINE_TRANSCRIPTION": "on" if model else "off",
           "HOTLINE_TWILIO_SWEEP_SECONDS": "0",
           # Each line's metrics on a port of its own (as in production, on 127.0.0.1): they cost what they cost.
           "HOTLINE_METRICS_ADDRESS": f"127.0.0.1:{free_port()}"}
    if model:
        env["VOSK_MODEL_PATH"] = str(model)
    return env, database_url


def run(quick: bool, profile: bool, transcription: bool, postgresql: str | None = None) -> tuple[int, list[str]]:
    server = None
    if postgresql == "auto":
        from tests.support.postgres import PostgresServer

        server = PostgresServer().start()
        postgresql = server.new_database()
    try:
        return _run(quick, profile, transcription, postgresql)
    finally:
        if server is not None:
            server.stop()


def _run(quick: bool, profile: bool, transcription: bool, postgresql: str | None) -> tuple[int, list[str]]:
    from simulator.fake_twilio import FakeTwilio
    from tests.support.processes import free_port

    in_flight, calls_each, saturated_seconds = (20, 1, 5.0) if quick else (100, 3, 20.0)
    model = model_dir() if transcription else None
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="hotline-load-") as folder, FakeTwilio(ACCOUNT_SID, token) as fake:
        workspace = Path(folder)
        takes, take_kind = takes_for_run(model is not None)
        targets: list[Target] = []
        bare_env, _ = hotline_env(workspace, "bare", token, fake, None)
        port = free_port()
        bare_command = procfile_web_command(port, f"benchmarks.load:bare_app('{PUBLIC_BASE_URL}')")
        targets.append(Target(Server("bare", bare_command, bare_env, workspace / "bare.log", port), None, "bare endpoint"))
        lines = [("hotline", None, None), ("hotline+stt", model, None), ("hotline-pg", None, postgresql)]
        for name, with_model, database in lines:
            if (name == "hotline+stt" and model is None) or (name == "hotline-pg" and not postgresql):
                continue
            env, database_url = hotline_env(workspace, name, token, fake, with_model, database)
            port = free_port()
            targets.append(Target(Server(name, procfile_web_command(port), env, workspace / f"{name}.log", port),
                                  database_url, "the line" + (", transcribing its takes" if with_model else "")))
        port = free_port()
        targets.append(Target(Server(CHECKED, procfile_web_command(port, f"benchmarks.load:checked_app('{PUBLIC_BASE_URL}')"),
                                     bare_env, workspace / "checked.log", port), None, "signature and one row"))
        # The bare endpoint again, last: the ratios are taken against the better of its two phases, so one
        # that lost its cores to the machine's other tenants (cpu stolen) does not flatter the line.
        port = free_port()
        targets.append(Target(Server(BARE_AGAIN, procfile_web_command(port, bare_command[-1]), bare_env,
                                     workspace / "bare-again.log", port), None, "bare endpoint"))
        print(f"servers: gunicorn {' '.join(procfile_web_command(0)[1:-1]).replace('127.0.0.1:0', '127.0.0.1:PORT')}")
        print(f"takes: {take_kind}; transcription in the line's process: "
              f"{'measured both off and on' if model else 'off' if not transcription else 'off (no speech model in the test cache)'}",
              flush=True)
        results: dict[str, dict[str, tuple[Tally, float, float]]] = {"paced": {}, "saturated": {}}
        errors: dict[str, int] = {}
        stuck: dict[str, int] = {}
        try:
            for target in targets:
                target.server.wait_ready()
            for target in targets:
                server = target.server
                run_calls(server, fake, token, takes, in_flight=2, pause=0.0, calls_per_caller=2)  # warm up
                if target.database_url:
                    wait_for_jobs(target.database_url, 120)
                for phase, options in (("paced", dict(in_flight=in_flight, pause=1.0, calls_per_caller=calls_each)),
                                       ("saturated", dict(in_flight=SATURATING_CALLERS, pause=0.0,
                                                          seconds=saturated_seconds))):
                    print(f"[{phase}] {server.name} ...", flush=True)
                    results[phase][server.name] = run_calls(server, fake, token, takes, **options)
                    if target.database_url and server.name != "hotline+stt":  # its backlog would take minutes
                        left = wait_for_jobs(target.database_url, 120)
                        if left:
                            print(f"    ({left} recording jobs still waiting after the phase)")
                            stuck[server.name] = stuck.get(server.name, 0) + left
                server.stop()  # the next target has the machine to itself
                errors[server.name] = server.server_errors()
        finally:
            for target in targets:
                target.server.stop()
        outcome = report(results, in_flight, errors, [t.server.name for t in targets], stuck)
        if profile:
            profile_webhooks(folder, fake, token, 40 if quick else 100)
            cpu_by_part(folder, fake, token, 40 if quick else 100)
        return outcome


def report(results, in_flight: int, server_errors: dict[str, int], names: list[str],
           stuck: dict[str, int]) -> tuple[int, list[str]]:
    """Prints the tables; returns the errors counted (answers, calls, jobs) and the targets missed."""
    paced, saturated = results["paced"], results["saturated"]
    missed: list[str] = []
    error_count = 0
    print(f"\n(a) {in_flight} calls in flight, 1 s between key presses (latency of each webhook, ms)")
    print(f"    {'server':12} {'calls':>6} {'webhooks':>9} {'p50':>8} {'p99':>8} {'max':>8} {'p50 x bare':>11} "
          f"{'p99 x bare':>11} {'in server p50/p99':>18} {'io / cpu stolen':>16}")
    bares = [name for name in names if name in ("bare", BARE_AGAIN)]
    unjudged = [*bares, CHECKED]
    bare_p50 = min(percentile(paced[name][0].latencies, .5) for name in bares)
    bare_p99 = min(percentile(paced[name][0].latencies, .99) for name in bares)
    for name in names:
        tally, _, _ = paced[name]
        lat = tally.latencies
        p50, p99 = percentile(lat, .5), percentile(lat, .99)
        verdict = "" if name in unjudged else ("  ok" if p99 / bare_p99 <= P99_TARGET else "  MISSED")
        if verdict.strip() == "MISSED":
            missed.append(f"{name} p99 {p99 / bare_p99:.2f}x")
        print(f"    {name:12} {tally.calls:6} {len(lat):9} {p50:8.1f} {p99:8.1f} {max(lat):8.1f} "
              f"{p50 / bare_p50:10.2f}x {p99 / bare_p99:10.2f}x {_in_server(tally):>18} "
              f"{_stalled(tally):>16}{verdict}")
    print(f"    target: p99 <= {P99_TARGET}x the bare endpoint's (x bare: against the lower of its two phases' p50s and "
          f"p99s, the run's first and last);\n    in server: each request's own time in gunicorn "
          f"(its access log), without the network,\n    the wait for a free thread or the load generator's own "
          f"delays;\n    io: share of the phase some task waited on the disk (/proc/pressure/io); cpu stolen: share "
          f"of the machine's CPU time its hypervisor gave to others (/proc/stat)")
    print("    by webhook, p50 / p99 ms (each server's slowest steps make its p99):")
    paths = list(paced["bare"][0].by_path)
    print("    " + " " * 12 + "".join(f" {path.rsplit('/', 1)[-1][:15]:>15}" for path in paths))
    for name in names:
        by_path = paced[name][0].by_path
        print(f"    {name:12}" + "".join(
            f" {percentile(by_path[path], .5):6.1f} /{percentile(by_path[path], .99):6.1f}" if by_path.get(path) else f" {'-':>15}"
            for path in paths))

    print(f"\n(b) saturated: {SATURATING_CALLERS} callers, no pauses (CPU: gunicorn's master and web workers; jobs: the embedded worker's process beside them)")
    print(f"    {'server':12} {'seconds':>8} {'webhooks':>9} {'per s':>8} {'x bare':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'CPU ms/webhook':>15} {'jobs CPU ms/webhook':>20} {'io / cpu stolen':>16}")
    bare_rate = max(len(saturated[name][0].latencies) / saturated[name][1] for name in bares)
    for name in names:
        tally, wall, cpu = saturated[name]
        lat = tally.latencies
        ratio = len(lat) / wall / bare_rate
        verdict = "" if name in unjudged else ("  ok" if ratio >= THROUGHPUT_TARGET else "  MISSED")
        if verdict.strip() == "MISSED":
            missed.append(f"{name} throughput {ratio:.2f}x")
        print(f"    {name:12} {wall:8.1f} {len(lat):9} {len(lat) / wall:8.1f} {ratio:6.2f}x {percentile(lat, .5):8.1f} "
              f"{percentile(lat, .99):8.1f} {cpu[0] * 1000 / max(1, len(lat)):15.2f} "
              f"{cpu[1] * 1000 / max(1, len(lat)):20.2f} {_stalled(tally):>16}{verdict}")
    print(f"    target: throughput >= {THROUGHPUT_TARGET}x the bare endpoint's (the higher of its two phases')")

    print("\n(c) errors (must be 0)")
    for name in names:
        bad = sum(results[p][name][0].bad_status for p in results)
        failed = sum(results[p][name][0].failed_calls for p in results)
        problems = [p for phase in results for p in results[phase][name][0].problems]
        print(f"    {name:12} non-2xx answers {bad}, 5xx in the access log {server_errors.get(name, 0)}, "
              f"failed calls {failed}, jobs left waiting {stuck.get(name, 0)}"
              + (f"; e.g. {problems[0]}" if problems else ""))
        error_count += bad + server_errors.get(name, 0) + failed + stuck.get(name, 0)
    print(f"\nerrors: {error_count}; targets missed: {', '.join(missed) or 'none'}")
    return error_count, missed


# --- where the time goes ------------------------------------------------------------------------------

def profile_webhooks(workspace: str, fake, token: str, calls: int) -> None:
    """The line in this process (Flask test client, SQLite, no worker) under cProfile."""
    from app import create_app
    from settings import Settings
    from simulator.audio import tone_wav
    from simulator.call import CallSimulator

    env, _ = hotline_env(Path(workspace), "profile", token, fake, None)
    settings = Settings.from_env(dict(env, HOTLINE_WORKER="off"), web=True)
    app = create_app(settings)
    simulator = CallSimulator.for_flask_app(app, public_base_url=PUBLIC_BASE_URL, account_sid=ACCOUNT_SID,
                                            auth_token=token, fake_twilio=fake)
    take = tone_wav(2.0)
    for n in range(3):  # warm: statement caches, imports
        one_call(simulator, f"+44770090{n:04d}", take, 0.0)
    warm = len(simulator.calls)
    statements: list[str] = []
    from sqlalchemy import event

    event.listen(app.extensions["hotline"].db.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: statements.append(statement.split(None, 1)[0].upper()))
    profiler = cProfile.Profile()
    profiler.enable()
    for n in range(calls):
        one_call(simulator, f"+44770091{n:04d}", take, 0.0)
    profiler.disable()
    webhooks = sum(len(call.exchanges) for call in simulator.calls[warm:])
    app.extensions["hotline"].db.dispose()

    entries = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, callers)

    def cumulative(match: Callable[[str, str], bool]) -> float:
        # Outermost matching frames only, so a function reached through another match is not counted twice.
        return sum(cum for (path, _, name), (_, _, _, cum, callers) in entries.items()
                   if match(path, name) and not any(match(c[0], c[2]) for c in callers))

    def ours(module: str, *names: str) -> Callable[[str, str], bool]:
        return lambda path, name: path.endswith(module) and name in names

    whole = cumulative(ours("flask/app.py", "wsgi_app"))
    parts = [
        ("signature check (ivr/signature.py)", ours("ivr/signature.py", "twilio_signature_is_valid")),
        ("form parsing and CallEvent (ivr/events.py)", ours("ivr/views.py", "_event")),
        ("per-caller limit (ivr/limits.py)", ours("ivr/limits.py", "refusal")),
        ("call flow and desk, their SQL included (CallFlow.handle)", ours("ivr/flow.py", "handle")),
        ("callbacks' desk work (recording status, call ended)", ours("ivr/desk.py", "recording_status", "call_ended")),
        ("commit, with the flush of what the flow changed", lambda p, n: n == "commit" and p.endswith("orm/session.py")),
        ("TwiML rendering (ivr/twiml.py)", ours("ivr/twiml.py", "render")),
    ]
    across = [
        ("SQL statements (SQLAlchemy Connection.execute)", ours("engine/base.py", "_execute_context")),
        # sqlite3's own execute, a C function, named by cProfile after the cursor's class: storage/db.py's
        # cursors are storage/sqlite_writers.py's QueuedWriterCursor, whose execute (Python) calls it.
        ("  of which in SQLite itself (cursor.execute)", lambda p, n: p == "~" and (
            n == "<method 'execute' of 'sqlite3.Cursor' objects>" or n.startswith("<function QueuedWriterCursor.execute "))),
        ("ORM flushes (Session._flush)", ours("orm/session.py", "_flush")),
        ("the anonymity hook on each flush (storage/anonymity.py)", ours("storage/anonymity.py", "__call__")),
    ]
    print(f"\n(d) where a webhook's time goes: {webhooks} webhooks of {calls} whole calls in this process under "
          f"cProfile (Flask test client, SQLite, no worker; the profiler's overhead is included)")
    print(f"    {'':60} {'ms/webhook':>11} {'share':>7}")
    print(f"    {'whole request (Flask wsgi_app)':60} {whole * 1000 / webhooks:11.3f} {100:6.0f}%")
    counted = 0.0
    for label, match in parts:
        seconds = cumulative(match)
        counted += seconds
        print(f"    {label:60} {seconds * 1000 / webhooks:11.3f} {100 * seconds / whole:6.1f}%")
    rest = whole - counted
    print(f"    {'the rest (Flask, werkzeug, sessions opened and closed)':60} {rest * 1000 / webhooks:11.3f} "
          f"{100 * rest / whole:6.1f}%")
    print("    across the parts above:")
    for label, match in across:
        seconds = cumulative(match)
        print(f"    {label:60} {seconds * 1000 / webhooks:11.3f} {100 * seconds / whole:6.1f}%")
    kinds = {kind: statements.count(kind) for kind in sorted(set(statements))}
    print(f"    SQL statements per webhook: {len(statements) / webhooks:.2f} ("
          + ", ".join(f"{kind} {count / webhooks:.2f}" for kind, count in kinds.items()) + ")")
    print("\n    the functions of ours with the most cumulative time:")
    mine = sorted(((key, value) for key, value in entries.items()
                   if str(ROOT) in key[0] and "/simulator/" not in key[0] and "/benchmarks/" not in key[0]
                   and "/.venv/" not in key[0]), key=lambda item: item[1][3], reverse=True)[:14]
    for (path, line, name), (_, calls_made, _, cumtime, _) in mine:
        where = str(Path(path).relative_to(ROOT))
        print(f"    {cumtime * 1000 / webhooks:8.3f} ms/webhook  {calls_made / webhooks:5.2f} calls/webhook  "
              f"{name} ({where}:{line})")


# The parts timed in (e): (module, attribute, label); a class's method is given as (class, name). Nested
# parts are timed where they run: the desk's statements, a new case's and its question key's, the jobs'
# and the commit together are the database's share of the call flow's transaction (ivr/views.py _run).
def _cpu_parts():
    import ivr.desk
    import ivr.views
    import storage.questions
    from sqlalchemy.orm import Session

    return [
        (ivr.views, "twilio_signature_is_valid", "signature check, with the form's parsing"),
        (ivr.views, "parse_call_event", "CallEvent from the form"),
        (ivr.views, "_run", "the flow's transaction (session, flow, desk, commit)"),
        (ivr.desk.SqlCallDesk, "_run", "  the desk's statements (ivr/desk.py)"),
        (ivr.desk, "open_case_row", "  a new case (storage/cases.py)"),
        (storage.questions, "new_question_key", "  its question key (storage/questions.py)"),
        (ivr.desk, "enqueue", "  jobs queued (jobs/queue.py)"),
        (Session, "commit", "  the commit"),
        (ivr.views, "_twiml", "TwiML"),
    ]


def _cpu_timed(function, spent: dict[str, float], label: str, calls: dict[str, int] | None = None):
    """function, adding its thread's CPU time to spent[label] (and a call to calls[label]) each time it runs."""
    def wrapper(*args, **kwargs):
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + time.thread_time() - started
            if calls is not None:
                calls[label] = calls.get(label, 0) + 1
    return wrapper


@contextmanager
def _thread_cpu_timed(parts, spent: dict[str, float]):
    """Each part's function wrapped, for the block, to add its thread's CPU time to spent[label]."""
    originals = []
    try:
        for owner, name, label in parts:
            original = owner.__dict__[name]
            originals.append((owner, name, original))
            setattr(owner, name, _cpu_timed(original, spent, label))
        yield
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)


def cpu_by_part(workspace: str, fake, token: str, calls: int) -> None:
    """(e): the same in-process webhooks without a profiler, each part's CPU time (time.thread_time), and
    the bare endpoint's whole request beside the line's: the line's own cost, without gunicorn's."""
    from app import create_app
    from settings import Settings
    from simulator.audio import tone_wav
    from simulator.call import CallSimulator

    env, _ = hotline_env(Path(workspace), "parts", token, fake, None)
    take = tone_wav(2.0)
    options = dict(public_base_url=PUBLIC_BASE_URL, account_sid=ACCOUNT_SID, auth_token=token, fake_twilio=fake)
    used: dict[str, float] = {}  # each app's whole requests' CPU seconds, and how many there were
    requests: dict[str, int] = {}
    wholes: dict[str, float] = {}  # ms a request
    spent: dict[str, float] = {}
    line = create_app(Settings.from_env(dict(env, HOTLINE_WORKER="off"), web=True))
    checked_folder = Path(workspace) / "checked-in-process"
    checked_folder.mkdir()
    for name, app in (("bare", bare_app()), (CHECKED, checked_app(PUBLIC_BASE_URL, token, checked_folder)), ("line", line)):
        simulator = CallSimulator.for_flask_app(app, **options)
        for n in range(3):  # warm
            one_call(simulator, f"+44770092{n:04d}", take, 0.0)
        app.wsgi_app = _cpu_timed(app.wsgi_app, used, name, requests)
        with collector_paused(), _thread_cpu_timed(_cpu_parts() if name == "line" else [], spent):
            for n in range(calls):
                one_call(simulator, f"+44770093{n:04d}", take, 0.0)
        wholes[name] = used[name] * 1000 / requests[name]
    webhooks = requests["line"]
    line.extensions["hotline"].db.dispose()
    print(f"\n(e) CPU a webhook, without a profiler: {webhooks} webhooks of {calls} whole calls in this process "
          f"(Flask test client, SQLite, no worker; time.thread_time)")
    print(f"    {'':60} {'ms/webhook':>11}")
    print(f"    {'the bare endpoint, whole request (Flask wsgi_app)':60} {wholes['bare']:11.3f}")
    print(f"    {'checked (its signature check and one committed row), whole':60} {wholes[CHECKED]:11.3f}")
    print(f"    {'the line, whole request (Flask wsgi_app)':60} {wholes['line']:11.3f}")
    for _, _, label in _cpu_parts():
        print(f"    {label:60} {spent.get(label, 0.0) * 1000 / webhooks:11.3f}")
    print(f"    the line's own cost over the bare endpoint's: {wholes['line'] - wholes['bare']:.3f} ms a webhook; "
          f"over checked's: {wholes['line'] - wholes[CHECKED]:.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 calls in flight, 5 s saturated (the CI form)")
    parser.add_argument("--profile", action="store_true", help="also profile in-process webhooks (cProfile)")
    parser.add_argument("--profile-only", action="store_true", help="only the profile: no servers, no load")
    parser.add_argument("--no-transcription", action="store_true",
                        help="leave transcription off even when the speech model is in the test cache")
    parser.add_argument("--postgresql", metavar="URL|auto",
                        help="also measure the line on PostgreSQL: an empty database's URL, or 'auto' for a "
                             "throwaway server on 127.0.0.1 (as the tests start one)")
    parser.add_argument("--enforce-targets", action="store_true",
                        help="exit 1 when a target is missed, not only on errors")
    parser.add_argument("--workers", help="instead of the Procfile's --workers (an experiment, both servers)")
    parser.add_argument("--threads", help="instead of the Procfile's --threads (an experiment, both servers)")
    arguments = parser.parse_args(argv)
    for flag in ("workers", "threads"):
        if getattr(arguments, flag):
            GUNICORN_OVERRIDES[f"--{flag}"] = str(int(getattr(arguments, flag)))
    if arguments.profile_only:
        from simulator.fake_twilio import FakeTwilio

        token = secrets.token_hex(16)
        with tempfile.TemporaryDirectory(prefix="hotline-profile-") as folder, FakeTwilio(ACCOUNT_SID, token) as fake:
            profile_webhooks(folder, fake, token, 40 if arguments.quick else 100)
            cpu_by_part(folder, fake, token, 40 if arguments.quick else 100)
        return 0
    errors, missed = run(arguments.quick, arguments.profile, not arguments.no_transcription, arguments.postgresql)
    return 1 if errors or (missed and arguments.enforce_targets) else 0


if __name__ == "__main__":
    sys.exit(main())
