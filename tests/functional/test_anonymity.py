"""An anonymous caller's number, name and whereabouts are never written anywhere: not to the database,
the data directory, the logs, a URL or an error. We place distinctive values in every From*/Caller*
field, make anonymous calls down every path, and search everything the hotline wrote.

Nor is anything left that ties an anonymous case to the phone network's records: once the calls are
processed, no CallSid or RecordingSid of them is in the database, the data directory or a log line, no
stored time is finer than the hour (or the day), ids are not a sequence that orders cases in time, and
Twilio itself (the fake) has had every call's record deleted."""
from __future__ import annotations

import logging
import os
import subprocess
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import MetaData, select

from jobs import calls as call_jobs
from simulator.call import CallSimulator
from simulator.transport import HttpTransport
from storage.models import Job
from tests.support.audio import phone_wav
from tests.support.processes import ROOT, answers_health_check, free_port, procfile_command, wait_until

NUMBER = "+447700900987"
FORWARDED = "+447700900654"
NAME = "Zebedee Quixote-Marchbanks"
PLACE = "XYLOTOWN"


def formattings(number: str) -> list[str]:
    national = "0" + number[3:]
    local = number[3:]
    return [
        number, number[1:], national, local, "%2B" + number[1:],
        f"+44 {local[:4]} {local[4:]}", f"{national[:5]} {national[5:]}", f"+44 (0){local[:4]} {local[4:]}",
        f"+44-{local[:4]}-{local[4:7]}-{local[7:]}", f"{local[:4]} {local[4:7]} {local[7:]}",
        "-".join([local[:4], local[4:7], local[7:]]), ", ".join(local), " ".join(local),
    ]


SECRETS = formattings(NUMBER) + formattings(FORWARDED) + [NAME, NAME.upper(), NAME.lower(), PLACE, PLACE.lower()]


def _identity_options() -> dict:
    return dict(
        caller_name=NAME, forwarded_from=FORWARDED,
        extra_params={"FromCity": PLACE, "CallerCity": PLACE, "FromZip": "ZZ9 9ZZ", "CallerZip": "ZZ9 9ZZ",
                      "FromState": PLACE, "CallerState": PLACE, "StirVerstat": "TN-Validation-Passed-A"},
    )


def _every_anonymous_path(twilio: CallSimulator) -> list:
    calls = []
    report = twilio.dial(from_=NUMBER, **_identity_options())
    for key in "1913":  # a wrong key on the way
        report.presses(key)
    report.says(phone_wav(1.0))
    report.presses("3")
    report.says(phone_wav(1.0), then="#")
    report.presses("2")
    report.says(phone_wav(1.0))
    report.presses("1")
    reference = "".join(ch for ch in " ".join(report.heard) .split("reference is")[1].split("Your PIN")[0] if ch.isdigit())
    pin = "".join(ch for ch in " ".join(report.heard).split("PIN is")[1].split("To hear")[0] if ch.isdigit())
    report.presses("1")
    report.hangs_up()
    calls.append(report)

    silent = twilio.dial(from_=NUMBER, **_identity_options())  # says nothing at the anonymity choice
    silent.presses("1")
    silent.waits()
    silent.presses("4")
    silent.says(phone_wav(1.0), then="hangup")
    calls.append(silent)

    back = twilio.dial(from_=NUMBER, **_identity_options())
    back.presses("2")
    back.presses("12345678"); back.presses("0000")  # wrong first
    back.presses(reference); back.presses(pin)
    back.says(phone_wav(1.0))
    back.presses("1")
    calls.append(back)

    quiet = twilio.dial(from_=NUMBER, **_identity_options())
    quiet.waits(); quiet.waits(); quiet.waits()
    calls.append(quiet)

    empty = twilio.dial(from_=NUMBER, **_identity_options())
    for key in "115":
        empty.presses(key)
    empty.says_nothing()
    empty.hangs_up()
    calls.append(empty)
    return calls


def _database_text(hotline) -> str:
    """Every value in every table, as text (works the same for SQLite and PostgreSQL)."""
    metadata = MetaData()
    metadata.reflect(hotline.db.engine)
    parts = []
    with hotline.db.engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    parts.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
    return "\n".join(parts)


def _files_text(folder) -> list[tuple[str, str]]:
    return [(path.name, path.read_bytes().decode("latin-1")) for path in folder.rglob("*") if path.is_file()]


def _assert_nowhere(texts: list[tuple[str, str]]) -> None:
    for where, text in texts:
        for secret in SECRETS:
            assert secret not in text, f"caller data ({secret!r}) found in {where}"


@pytest.fixture
def all_logs(caplog):
    caplog.set_level(logging.DEBUG)  # everything, from every library
    return caplog


def _wait_for_jobs(hotline, fake_twilio, calls) -> None:
    sids = [sid for call in calls for sid in call.recording_sids]
    assert sids
    assert wait_until(lambda: all(sid not in fake_twilio.recordings for sid in sids), timeout=30)


def _unfinished_jobs(hotline) -> int:
    with hotline.db.session() as session:
        return len(session.scalars(select(Job.id).where(Job.state != "done")).all())


def _wait_until_processed(hotline, fake_twilio, calls) -> None:
    """Every take stored and deleted at Twilio, every call's record deleted there, every job done."""
    _wait_for_jobs(hotline, fake_twilio, calls)
    assert wait_until(lambda: all(fake_twilio.calls[call.call_sid].deleted for call in calls), timeout=30), \
        {sid: record.status for sid, record in fake_twilio.calls.items() if not record.deleted}
    assert wait_until(lambda: _unfinished_jobs(hotline) == 0, timeout=30)


@pytest.fixture
def prompt_call_records(monkeypatch):
    """Twilio advises a minute's wait after a call ends before deleting its record: not in these tests."""
    monkeypatch.setattr(call_jobs, "FIRST_TRY", timedelta(0))
    monkeypatch.setattr(call_jobs, "RETRY_BASE_SECONDS", 0.2)


def _twilio_ids(calls) -> set[str]:
    """Every CallSid and RecordingSid of these calls (those of empty recordings too: the callback named them)."""
    return {call.call_sid for call in calls} | {recording.sid for call in calls for recording in call.recordings}


def _assert_no_twilio_ids(ids: set[str], texts: list[tuple[str, str]]) -> None:
    assert ids
    for where, text in texts:
        for sid in ids:
            assert sid not in text, f"a Twilio id of an anonymous call ({sid[:2]}...) found in {where}"


ZONE = ZoneInfo("Europe/London")


def _stored_times(hotline) -> list[tuple[str, datetime]]:
    metadata = MetaData()
    metadata.reflect(hotline.db.engine)
    found = []
    with hotline.db.engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for column, value in zip(table.columns, row):
                    if isinstance(value, datetime):
                        found.append((f"{table.name}.{column.name}", value))
    return found


def _assert_no_finer_than(precision: str, times: list[tuple[str, datetime]]) -> None:
    assert times
    for where, moment in times:
        local = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(ZONE)
        fine = (local.minute, local.second, local.microsecond) + ((local.hour,) if precision == "day" else ())
        assert not any(fine), f"{where} is stored to the {'minute' if precision == 'hour' else 'hour'} or finer: {local}"


def _assert_ids_are_no_sequence(hotline) -> None:
    """Ids in insertion order would interleave anonymous cases with named ones, whose times are precise."""
    metadata = MetaData()
    metadata.reflect(hotline.db.engine)
    with hotline.db.engine.connect() as connection:
        for table in (metadata.tables[name] for name in ("cases", "calls", "recordings", "sealed_items", "jobs")):
            ids = sorted(connection.scalars(select(table.c.id)))
            assert len(ids) >= 2, table.name
            assert min(b - a for a, b in zip(ids, ids[1:])) > 1000, f"{table.name} ids look sequential: {ids[:5]}"


def test_anonymous_callers_leave_no_trace(twilio, running_app, fake_twilio, data_dir, all_logs, capfd, prompt_call_records):
    hotline = running_app.extensions["hotline"]
    calls = _every_anonymous_path(twilio)
    _wait_until_processed(hotline, fake_twilio, calls)
    database = _database_text(hotline)
    times = _stored_times(hotline)
    _assert_ids_are_no_sequence(hotline)
    hotline.dispatcher.stop()
    hotline.db.dispose()
    assert "domestic-abuse" in database  # the search does see the data that is stored
    captured = capfd.readouterr()
    twiml = "\n".join(document.raw for call in calls for document in call.documents)
    stored = [("the database", database), ("the logs", all_logs.text), ("stdout", captured.out), ("stderr", captured.err)]
    files = [(f"data file {name}", text) for name, text in _files_text(data_dir)]
    _assert_nowhere(stored + files + [("the TwiML and its URLs", twiml)])
    _assert_no_twilio_ids(_twilio_ids(calls), stored + files)
    _assert_no_finer_than("hour", times)
    assert {call.call_sid for call in calls} <= set(fake_twilio.calls)
    assert all(record.deleted for record in fake_twilio.calls.values())  # Twilio's copy of the caller's number too


@pytest.fixture
def day_app(settings):
    from app import create_app

    app = create_app(settings.with_overrides(worker_mode="inprocess", transcription=False, anonymous_time="day"),
                     start_worker=True)
    yield app
    app.extensions["hotline"].dispatcher.stop()
    app.extensions["hotline"].db.dispose()


def test_configured_to_the_day_no_stored_time_of_an_anonymous_call_is_finer(day_app, settings, fake_twilio, prompt_call_records):
    twilio = CallSimulator.for_flask_app(day_app, public_base_url=settings.public_base_url, fake_twilio=fake_twilio,
                                         account_sid=settings.twilio_account_sid, auth_token=settings.twilio_auth_token)
    caller = twilio.dial(from_=NUMBER)
    for key in "113":
        caller.presses(key)
    caller.says(phone_wav(1.0))
    caller.presses("1")
    caller.hangs_up()
    hotline = day_app.extensions["hotline"]
    _wait_until_processed(hotline, fake_twilio, [caller])
    _assert_no_finer_than("day", _stored_times(hotline))


# --- the web server's own access log, as the Procfile runs it -----------------------------------------

def test_over_real_http_the_access_logs_carry_no_caller_data_no_twilio_ids_and_no_query(settings, settings_env, fake_twilio, tmp_path):
    port = free_port()
    env = {**settings_env, "HOTLINE_WORKER": "inprocess", "HOTLINE_TRANSCRIPTION": "off", "PORT": str(port),
           "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT)}
    output = tmp_path / "web.log"
    with open(output, "wb") as log:
        server = subprocess.Popen(procfile_command("web", port) + ["--workers", "1"], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: answers_health_check(port), timeout=30), output.read_text()
        twilio = CallSimulator(
            HttpTransport(f"http://127.0.0.1:{port}"), public_base_url=settings.public_base_url,
            account_sid=settings.twilio_account_sid, auth_token=settings.twilio_auth_token, fake_twilio=fake_twilio,
        )
        calls = _every_anonymous_path(twilio)
        _wait_for_jobs(None, fake_twilio, calls)
        requests.post(f"http://127.0.0.1:{port}/ivr/x%0Aforged-line%0A?From=%2B447700900987", timeout=5)
    finally:
        server.terminate()
        server.wait(30)
    text = output.read_text(errors="replace")
    access = [line for line in text.splitlines() if "/ivr/" in line]
    assert any('"POST /ivr/voice HTTP/1.1" 200' in line for line in access), text[-2000:]  # the access log was read
    assert any("/ivr/keep" in line or "/ivr/after" in line for line in access)  # steps whose URLs carry a query
    assert not any("?" in line for line in access), [line for line in access if "?" in line][:3]
    assert not any(line.startswith("forged-line") for line in text.splitlines())  # a path logged as it came, encoded
    _assert_nowhere([("the web server's output", text)])
    _assert_no_twilio_ids(_twilio_ids(calls), [("the web server's output", text)])


def test_a_caller_who_leaves_contact_details_has_them_sealed_not_written(twilio, running_app, data_dir):
    hotline = running_app.extensions["hotline"]
    caller = twilio.dial(from_=NUMBER, **_identity_options())
    caller.presses("1")
    caller.presses("2")
    caller.presses("1")  # use the number I am calling from
    caller.presses("1")
    caller.says(phone_wav(1.0))
    caller.presses("1")
    database = _database_text(hotline)
    hotline.dispatcher.stop()
    hotline.db.dispose()
    _assert_nowhere([("the database", database)] + [(f"data file {n}", t) for n, t in _files_text(data_dir)])
