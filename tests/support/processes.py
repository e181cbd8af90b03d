"""Real processes for tests: redis-server, Celery workers, the hotline's own worker command, and the
line's web process as the Procfile runs it."""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def procfile_command(process: str, port: int) -> list[str]:
    """The Procfile's gunicorn line for `process`, on 127.0.0.1:port, run with this interpreter."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith(f"{process}:"))
    words = shlex.split(line.split(":", 1)[1].replace("$PORT", str(port)).replace("0.0.0.0", "127.0.0.1"))
    assert words[0] == "gunicorn"
    return [sys.executable, "-m", "gunicorn", *words[1:]]


def answers_health_check(port: int) -> bool:
    import requests

    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


class RedisServer:
    """A redis-server on 127.0.0.1 and a free port, with no persistence. halt() kills it and start() brings
    it back on the same port, for runs that take Redis away (benchmarks/faults.py)."""

    def __init__(self, folder: Path | None = None):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self._own_folder = folder is None
        self.folder = tempfile.mkdtemp(prefix="hotline-redis-") if folder is None else str(folder)
        Path(self.folder).mkdir(exist_ok=True)
        self.process = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.folder],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def halt(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)


class Worker:
    """A worker process with the given environment; its output goes to a file for the test to read."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "ab")
        full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
                    "PYTHONPATH": str(ROOT), **env}
        self.process = subprocess.Popen(command, env=full_env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    @classmethod
    def hotline(cls, env: dict[str, str], log_path: Path) -> "Worker":
        return cls([sys.executable, "-m", "flask", "--app", "app", "jobs", "work"], env, log_path)

    @classmethod
    def celery(cls, env: dict[str, str], log_path: Path, concurrency: int = 1) -> "Worker":
        return cls([sys.executable, "-m", "celery", "--app", "jobs.celery_app", "worker", "--pool", "prefork",
                    "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
                    "--without-heartbeat", "--loglevel", "INFO"], env, log_path)

    def kill(self) -> None:
        """Like the machine losing power: no chance to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")
