"""The load benchmark reads gunicorn's access log as gunicorn.conf.py writes it: each answer's status, and
its time in the server, the last field."""
from __future__ import annotations

import runpy
from types import SimpleNamespace

import requests

from benchmarks.load import PUBLIC_BASE_URL, Server, access_entries, cpu_ticks, hotline_env, procfile_web_command
from tests.support.processes import ROOT, free_port, wait_until


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


def test_under_gunicorn_each_answer_s_time_is_read_and_the_server_stops(tmp_path, fake_twilio, twilio_auth_token):
    """The benchmark's own harness, as its runs use it: the bare endpoint under the Procfile's gunicorn."""
    env, _ = hotline_env(tmp_path, "bare", twilio_auth_token, fake_twilio, None)
    port = free_port()
    server = Server("bare", procfile_web_command(port, f"benchmarks.load:bare_app('{PUBLIC_BASE_URL}')"), env,
                    tmp_path / "bare.log", port)
    try:
        server.wait_ready()
        # gunicorn writes a request's line after its answer: the readiness probe's must be in before `before`
        # is read, or it lands in the window measured (it did, in a clean-clone CI run and 2 of 6 runs here).
        assert wait_until(lambda: server.request_times(0, server.log_size()), timeout=10)
        before = server.log_size()
        assert requests.post(server.url + "/ivr/voice", timeout=10).status_code == 200
        assert wait_until(lambda: server.request_times(before, server.log_size()), timeout=10)
        times = server.request_times(before, server.log_size())
    finally:
        server.stop()
    assert len(times) == 1 and 0 < times[0] < 10_000
    assert server.server_errors() == 0 and server.process.poll() is not None


def test_the_machine_s_stolen_cpu_time_is_read_from_proc_stat():
    stolen, total = cpu_ticks()
    assert total > 0 and 0 <= stolen <= total


def test_the_profile_finds_the_time_in_sqlite_itself(tmp_path, twilio_auth_token, capsys):
    """Its row for SQLite's own execute read 0 once the line's cursors became the writers' queue's
    (storage/sqlite_writers.py), which cProfile names after their class."""
    from benchmarks.load import ACCOUNT_SID, profile_webhooks
    from simulator.fake_twilio import FakeTwilio

    with FakeTwilio(ACCOUNT_SID, twilio_auth_token) as fake:  # the benchmark's account, as its runs use
        profile_webhooks(str(tmp_path), fake, twilio_auth_token, 3)
    rows = {line[:64].strip(): line[64:].split() for line in capsys.readouterr().out.splitlines() if len(line) > 64}
    whole, sqlite = float(rows["whole request (Flask wsgi_app)"][0]), float(rows["of which in SQLite itself (cursor.execute)"][0])
    assert 0 < sqlite < whole


def test_the_cpu_by_part_times_every_part_within_the_whole_and_unwraps_them(tmp_path, twilio_auth_token, capsys):
    import ivr.views
    from benchmarks.load import ACCOUNT_SID, _cpu_parts, cpu_by_part
    from simulator.fake_twilio import FakeTwilio

    before = [owner.__dict__[name] for owner, name, _ in _cpu_parts()]
    with FakeTwilio(ACCOUNT_SID, twilio_auth_token) as fake:
        cpu_by_part(str(tmp_path), fake, twilio_auth_token, 3)
    rows = {line[:64].strip(): float(line[64:]) for line in capsys.readouterr().out.splitlines()
            if len(line) > 64 and line.startswith("    ") and line[64:].strip().replace(".", "").isdigit()}
    whole, bare = rows["the line, whole request (Flask wsgi_app)"], rows["the bare endpoint, whole request (Flask wsgi_app)"]
    parts = [rows[label.strip()] for _, _, label in _cpu_parts()]
    checked = rows["checked (its signature check and one committed row), whole"]
    assert 0 < bare < checked < whole and all(0 < part < whole for part in parts)
    assert [owner.__dict__[name] for owner, name, _ in _cpu_parts()] == before  # the line runs unwrapped again
    assert ivr.views._run.__module__ == "ivr.views"


def test_the_checked_reference_refuses_a_bad_signature_and_commits_one_row_a_webhook(tmp_path, twilio_auth_token):
    import sqlite3

    from benchmarks.load import checked_app
    from tests.conftest import PUBLIC_BASE_URL as SIGNED_BASE_URL  # the URL SignedTwilio signs
    from tests.support.webhooks import SignedTwilio, call_params, new_call_sid

    twilio = SignedTwilio(checked_app(SIGNED_BASE_URL, twilio_auth_token, tmp_path).test_client(), twilio_auth_token)
    call_sid = new_call_sid()
    assert twilio.post("/ivr/voice", call_params(call_sid), signature=False).status_code == 403
    assert twilio.post("/ivr/voice", call_params(call_sid)).status_code == 200
    assert twilio.post("/ivr/status", call_params(call_sid)).status_code == 204
    (database,) = tmp_path.glob("checked-*.db")
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT call_sid, step FROM webhooks ORDER BY id").fetchall() == [
            (call_sid, "voice"), (call_sid, "status")]
