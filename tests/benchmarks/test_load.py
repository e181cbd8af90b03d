"""The load benchmark reads gunicorn's access log as gunicorn.conf.py writes it: each answer's status, and
its time in the server, the last field."""
from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

from benchmarks.load import Server, access_entries

ROOT = Path(__file__).resolve().parents[2]


def access_line(path: str, status: int, micros: int) -> str:
    """One line as gunicorn writes it under the line's own access_log_format."""
    log_format = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["access_log_format"]
    return log_format % {"h": "127.0.0.1", "l": "-", "u": "-", "t": "[02/Dec/2026:14:57:01 +0000]",
                         "r": f"POST {path} HTTP/1.1", "s": str(status), "b": "0", "a": "python-requests/2.34.2",
                         "D": str(micros)}


def test_a_5xx_is_counted_and_a_time_that_starts_with_5_is_not(tmp_path):
    log = tmp_path / "web.log"
    log.write_text("\n".join([
        access_line("/ivr/voice", 200, 5123),  # 5.1 ms: its last field starts with a 5
        "[2026-12-02 14:57:01 +0000] [123] [INFO] Booting worker with pid: 123",
        access_line("/ivr/status", 503, 812),
    ]) + "\n")
    assert Server.server_errors(SimpleNamespace(log_path=log)) == 1


def test_each_answer_s_time_in_the_server_is_read_in_milliseconds():
    entries = access_entries(access_line("/ivr/recorded", 200, 48250) + "\n" + access_line("/ivr/x%0A", 404, 90))
    assert [(entry.path, entry.status, entry.ms) for entry in entries] == [("/ivr/recorded", 200, 48.25), ("/ivr/x%0A", 404, 0.09)]
