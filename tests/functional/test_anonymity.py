"""An anonymous caller's number, name and whereabouts are never written anywhere: not to the database,
the data directory, the logs, a URL or an error. We place distinctive values in every From*/Caller*
field, make anonymous calls down every path, and search everything the hotline wrote."""
from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import MetaData, select
from werkzeug.serving import make_server

from simulator.call import CallSimulator
from simulator.transport import HttpTransport
from tests.support.audio import phone_wav
from tests.support.processes import wait_until

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


def test_anonymous_callers_leave_no_trace(twilio, running_app, fake_twilio, data_dir, all_logs, capfd):
    hotline = running_app.extensions["hotline"]
    calls = _every_anonymous_path(twilio)
    _wait_for_jobs(hotline, fake_twilio, calls)
    database = _database_text(hotline)
    hotline.dispatcher.stop()
    hotline.db.dispose()
    assert "domestic-abuse" in database  # the search does see the data that is stored
    captured = capfd.readouterr()
    twiml = "\n".join(document.raw for call in calls for document in call.documents)
    _assert_nowhere(
        [("the database", database), ("the logs", all_logs.text), ("stdout", captured.out), ("stderr", captured.err),
         ("the TwiML and its URLs", twiml)]
        + [(f"data file {name}", text) for name, text in _files_text(data_dir)]
    )


def test_over_real_http_the_access_logs_carry_no_caller_data(running_app, settings, fake_twilio, data_dir, all_logs, capfd):
    server = make_server("127.0.0.1", 0, running_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        twilio = CallSimulator(
            HttpTransport(f"http://127.0.0.1:{server.server_port}"), public_base_url=settings.public_base_url,
            account_sid=settings.twilio_account_sid, auth_token=settings.twilio_auth_token, fake_twilio=fake_twilio,
        )
        calls = _every_anonymous_path(twilio)
        _wait_for_jobs(running_app.extensions["hotline"], fake_twilio, calls)
    finally:
        server.shutdown()
    captured = capfd.readouterr()
    assert "POST /ivr/voice" in all_logs.text + captured.err  # the access log was captured
    _assert_nowhere([("the logs", all_logs.text), ("stderr", captured.err), ("stdout", captured.out)])


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
