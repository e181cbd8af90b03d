"""Once the call-record job has erased a call's Twilio ids, SQLite's write-ahead log, which keeps the
overwritten pages, is emptied too: at once for the first erasure, and for later ones within the interval
(storage/compaction.py LogEmptier) once it has passed."""
from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from jobs import calls as call_jobs
from jobs.worker import run_until_idle
from storage import compaction
from storage.db import sqlite_file
from tests.jobs.test_call_records import _ended_call

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(call_jobs, "FIRST_TRY", timedelta(0))
    monkeypatch.setattr(compaction, "LOG_EMPTYING_SECONDS", 0.5)


def _files_hold(hotline, sids: list[str]) -> list[str]:
    path = sqlite_file(hotline.db.url)
    data = b"".join(Path(f"{path}{suffix}").read_bytes() for suffix in ("", "-wal") if Path(f"{path}{suffix}").exists())
    return [sid for sid in sids if sid.encode() in data]


@SQLITE
def test_erased_call_ids_leave_the_write_ahead_log(hotline, fake_twilio):
    first_call, first_takes = _ended_call(hotline, fake_twilio)
    run_until_idle(hotline.workshop)
    assert _files_hold(hotline, [first_call, *first_takes]) == []  # emptied at once

    second_call, second_takes = _ended_call(hotline, fake_twilio)
    run_until_idle(hotline.workshop)
    assert fake_twilio.calls[second_call].deleted
    deadline = time.monotonic() + 5
    while _files_hold(hotline, [second_call, *second_takes]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _files_hold(hotline, [second_call, *second_takes]) == []  # within the interval after
