"""Once the call-record job has erased a call's Twilio ids, SQLite's write-ahead log, which keeps the
overwritten pages, is emptied too: at once for the first erasure, and for later ones within the interval
(storage/compaction.py LogEmptier) once it has passed."""
from __future__ import annotations

from datetime import timedelta

import pytest

from jobs import calls as call_jobs
from jobs.worker import run_until_idle
from storage import compaction
from tests.support.ended_calls import ended_call
from tests.support.processes import wait_until
from tests.support.sqlite_files import found_in_file_or_log

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(call_jobs, "FIRST_TRY", timedelta(0))
    monkeypatch.setattr(compaction, "LOG_EMPTYING_SECONDS", 0.5)


@SQLITE
def test_erased_call_ids_leave_the_write_ahead_log(hotline, fake_twilio):
    first_call, first_takes = ended_call(hotline, fake_twilio)
    run_until_idle(hotline.workshop)
    assert found_in_file_or_log([first_call, *first_takes], hotline.db.url) == []  # emptied at once

    second_call, second_takes = ended_call(hotline, fake_twilio)
    run_until_idle(hotline.workshop)
    assert fake_twilio.calls[second_call].deleted
    assert wait_until(lambda: found_in_file_or_log([second_call, *second_takes], hotline.db.url) == [],
                      timeout=5)  # within the interval after
