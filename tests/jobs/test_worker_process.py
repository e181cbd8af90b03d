"""The embedded worker beside gunicorn (jobs/worker_process.py): its own process, at a lower priority,
woken by the web processes, restarted by the master, gone with it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from jobs.worker_process import NICENESS, WakeWorkerProcess, WorkerProcess, listen_for_wakes
from simulator.call import CallSimulator
from simulator.transport import HttpTransport
from storage.background import can_idle_and_come_back
from storage.db import Database
from storage.models import Job, JobKind, JobState
from tests.support.audio import phone_wav
from tests.support.processes import ROOT, answers_health_check, free_port, procfile_command, wait_until


# --- the wake and the watch on the parent, in this process ----------------------------------------------

def test_a_web_process_wakes_the_worker_with_a_datagram(tmp_path):
    woken, stopped = threading.Event(), threading.Event()
    path = str(tmp_path / "wake")
    thread = listen_for_wakes(path, woken.set, stopped)
    try:
        assert wait_until(lambda: Path(path).exists(), timeout=5)
        assert oct(Path(path).stat().st_mode & 0o777) == "0o600"
        WakeWorkerProcess(path).notify([1])
        assert woken.wait(2)
    finally:
        stopped.set()
        thread.join(5)
    assert not Path(path).exists()  # the socket goes with the listener


def test_waking_a_worker_that_is_not_listening_is_harmless(tmp_path):
    WakeWorkerProcess(str(tmp_path / "nobody")).notify([1])  # no error: the worker polls the database too


def test_the_worker_stops_when_the_master_is_gone(tmp_path):
    stopped = threading.Event()
    not_my_parent = os.getppid() + 1 if os.getppid() + 1 != os.getpid() else os.getppid() + 2
    thread = listen_for_wakes(str(tmp_path / "wake"), lambda: None, stopped, parent_pid=not_my_parent)
    assert stopped.wait(5)
    thread.join(5)


def test_the_master_starts_the_process_again_when_it_dies(tmp_path):
    marker = tmp_path / "starts"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x'); import time; time.sleep(60)"]
    exited: list[int] = []
    process = WorkerProcess(command, str(tmp_path / "wake"), on_exit=exited.append, delays=(0.1,))
    process.start()
    try:
        assert wait_until(lambda: marker.exists() and process.pid is not None, timeout=10)
        first = process.pid
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: process.pid not in (None, first) and marker.read_text() == "xx", timeout=10)
        assert exited == [first]
    finally:
        process.stop(timeout=10)
    assert len(exited) == 2  # the second, stopped in order, is accounted for too


# --- under gunicorn, as the Procfile runs the line ---------------------------------------------------------

def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


def _job_processes(master: int) -> list[int]:
    found = []
    for pid in _children(master):
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"jobs" in words and b"work" in words:
            found.append(pid)
    return found


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _policies(pid: int) -> set[int]:
    """The scheduling policies of a process's threads (field 41 of each thread's stat)."""
    policies = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            policies.add(int((task / "stat").read_text().rsplit(")", 1)[1].split()[38]))
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended meanwhile
    return policies


def _stored_takes(database_url: str) -> int:
    db = Database(database_url)
    try:
        with db.session() as session:
            return len(session.scalars(select(Job).where(Job.kind == JobKind.STORE_RECORDING,
                                                         Job.state == JobState.DONE)).all())
    finally:
        db.dispose()


def _report(twilio: CallSimulator, number: str) -> None:
    caller = twilio.dial(from_=number)
    for key in "113":
        caller.presses(key)
    caller.says(phone_wav(1.0))
    caller.presses("1")
    caller.hangs_up()


@pytest.mark.slow
def test_under_gunicorn_the_jobs_run_in_one_lower_priority_process_that_the_master_keeps_alive(
        settings, settings_env, fake_twilio, tmp_path):
    port = free_port()
    env = {**settings_env, "HOTLINE_WORKER": "inprocess", "HOTLINE_TRANSCRIPTION": "off", "PORT": str(port),
           "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT)}
    output = tmp_path / "web.log"
    with open(output, "wb") as log:
        server = subprocess.Popen(procfile_command("web", port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: answers_health_check(port), timeout=60), output.read_text()[-3000:]
        assert wait_until(lambda: len(_job_processes(server.pid)) == 1, timeout=30), output.read_text()[-3000:]
        [worker] = _job_processes(server.pid)
        assert wait_until(lambda: _niceness(worker) == NICENESS, timeout=10)
        time.sleep(3)  # once it has started and read its own --nice, it is at the same niceness, no lower
        assert _niceness(worker) == NICENESS
        web_workers = [pid for pid in _children(server.pid) if pid != worker]
        assert len(web_workers) == 2  # the Procfile's --workers 2: and no worker threads of their own
        twilio = CallSimulator(HttpTransport(f"http://127.0.0.1:{port}"), public_base_url=settings.public_base_url,
                               account_sid=settings.twilio_account_sid, auth_token=settings.twilio_auth_token,
                               fake_twilio=fake_twilio)

        _report(twilio, "+447700900101")
        assert wait_until(lambda: _stored_takes(settings.database_url) == 1, timeout=30), output.read_text()[-3000:]
        # Its threads idle between their holds, where Linux lets them come back (storage/background.py).
        idle = os.SCHED_IDLE if can_idle_and_come_back() else os.SCHED_OTHER
        assert wait_until(lambda: _policies(worker) == {idle}, timeout=10), _policies(worker)

        os.kill(worker, signal.SIGKILL)  # as the kernel's OOM killer would
        assert wait_until(lambda: [pid for pid in _job_processes(server.pid) if pid != worker], timeout=40)
        _report(twilio, "+447700900102")
        assert wait_until(lambda: _stored_takes(settings.database_url) == 2, timeout=60), output.read_text()[-3000:]
        [replacement] = _job_processes(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    assert wait_until(lambda: not Path(f"/proc/{replacement}").exists(), timeout=10)  # stopped with the line
    assert "the worker process stopped" in output.read_text()  # the kill was noticed and said, with no detail
