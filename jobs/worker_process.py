"""The embedded worker in a process of its own, beside the line's gunicorn.

Under gunicorn (the Procfile's `web:`, scripts/run) with HOTLINE_WORKER=inprocess, gunicorn's master
starts one `flask --app app jobs work` process (gunicorn.conf.py) instead of each web process running
the worker's threads. Fetching, sealing and Vosk's decoding used to share the web processes' CPU and
their interpreter lock with the webhooks, and a caller waited behind a transcription (README,
Performance: Load). In its own process, at a lower priority (nice), the worker takes only the CPU the
webhooks leave, and never holds a web process's lock.

The web processes wake it after each commit that queued a job, with a one-byte datagram on a Unix
socket in a private folder. The worker also polls the database, so a lost datagram delays a job by at
most a poll, and loses nothing: the job rows are the queue. The master restarts the process if it dies,
and the process stops by itself if the master goes away without stopping it.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from settings import share_worker_wake_socket

log = logging.getLogger("hotline.worker")

# What the job process is started with; it gives the webhooks the CPU first (weights: nice 10 gets about
# a tenth of a core that a web process also wants, and every cycle that nobody else wants).
NICENESS = 10
WAKE = b"!"
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds, after successive early deaths; reset after a good run
GOOD_RUN_SECONDS = 60.0
STOP_SECONDS = 20.0
POLL_SECONDS = 0.5


class WakeWorkerProcess:
    """The web side's dispatcher when the worker runs beside it: each notify is one datagram."""

    def __init__(self, wake_socket: str):
        self.wake_socket = wake_socket
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def start(self) -> None:
        pass

    def notify(self, job_ids: list[int]) -> None:
        try:
            self._socket.sendto(WAKE, self.wake_socket)
        except OSError:
            pass  # not listening (restarting) or its queue is full: it polls, and the jobs wait in the database

    def stop(self, timeout: float = 10.0) -> None:
        pass


def listen_for_wakes(wake_socket: str, wake, stopped: threading.Event, parent_pid: int | None = None) -> threading.Thread:
    """In the job process: call wake() for every datagram on wake_socket, until stopped is set. Sets
    stopped when the parent process (gunicorn's master) is gone, so no worker outlives its line."""
    path = Path(wake_socket)
    path.unlink(missing_ok=True)  # left by a predecessor that was killed
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.settimeout(1.0)

    def loop() -> None:
        try:
            while not stopped.is_set():
                try:
                    listener.recv(64)
                except socket.timeout:
                    if parent_pid is not None and os.getppid() != parent_pid:
                        log.warning("the line's server has gone; the worker stops")
                        stopped.set()
                    continue
                wake()
        finally:
            listener.close()
            path.unlink(missing_ok=True)

    thread = threading.Thread(target=loop, name="hotline-worker-wakes", daemon=True)
    thread.start()
    return thread


class WorkerProcess:
    """gunicorn's master's side: start the job process, restart it when it dies, stop it at the end.

    Started with posix_spawn, not subprocess: subprocess waits on a pipe until the child has exec'd, and
    a web worker that gunicorn forks meanwhile inherits that pipe's other end and keeps it open for its
    whole life, so the wait would never end. Its exit is polled, never waited on: gunicorn's master reaps
    every child that exits (its SIGCHLD handler waits for any pid)."""

    def __init__(self, command: list[str], wake_socket: str, folder: Path | None = None,
                 on_exit=None, delays: tuple[float, ...] = RESTART_DELAYS, environment: dict[str, str] | None = None):
        self.command = command
        self.environment = environment or {}
        self.wake_socket = wake_socket
        self.folder = folder
        self.on_exit = on_exit  # called with each dead process's pid (its metrics files are merged)
        self.delays = delays
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def for_the_line(cls, app: str = "app", on_exit=None) -> "WorkerProcess":
        """The Procfile's worker (`flask --app APP jobs work`): its wake socket in a new private folder; the
        environment is this process's, which every web process forked after this also gets (so they know
        where to wake it)."""
        folder = Path(tempfile.mkdtemp(prefix="hotline-worker-"))  # 0700; a short path (Unix sockets: 108 bytes)
        wake_socket = str(folder / "wake")
        environment = share_worker_wake_socket(wake_socket)
        command = [sys.executable, "-m", "flask", "--app", app, "jobs", "work", "--nice", str(NICENESS),
                   "--parent", str(os.getpid())]
        return cls(command, wake_socket, folder, on_exit, environment=environment)

    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self) -> None:
        with self._lock:
            self._pid = self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="hotline-worker-process", daemon=True)
        self._thread.start()

    def _spawn(self) -> int:
        # In the master's process group: what stops the whole group at once (a Ctrl-C, a kill of the group)
        # stops it too; the master's stop() asks it in order.
        pid = os.posix_spawn(self.command[0], self.command, self.environment)
        try:  # at once, not only once it has loaded the app and read its --nice (a second or two)
            os.setpriority(os.PRIO_PROCESS, pid, NICENESS)
        except OSError:
            pass  # it lowers its own priority as it starts
        return pid

    @staticmethod
    def _exit_status(pid: int) -> int | str | None:
        try:
            waited, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return "unknown"  # reaped by gunicorn's master
        return None if waited == 0 else os.waitstatus_to_exitcode(status)

    def _supervise(self) -> None:
        failures = 0
        started = time.monotonic()
        while not self._stopping.is_set():
            pid = self._pid
            while (status := self._exit_status(pid)) is None:
                if self._stopping.wait(POLL_SECONDS):
                    return
            if self.on_exit is not None:
                self.on_exit(pid)
            failures = 0 if time.monotonic() - started > GOOD_RUN_SECONDS else failures + 1
            delay = self.delays[min(max(failures - 1, 0), len(self.delays) - 1)]
            log.error("the worker process stopped (exit status %s); starting it again in %.0f s", status, delay)
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._pid = self._spawn()
            started = time.monotonic()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            pid = self._pid
        if pid is not None and self._exit_status(pid) is None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self._exit_status(pid) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._exit_status(pid) is None:
                os.kill(pid, signal.SIGKILL)
        if pid is not None and self.on_exit is not None:
            self.on_exit(pid)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
