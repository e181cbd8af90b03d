import socket
import threading

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from werkzeug.serving import make_server

from simulator.cli import parse_script, run_simulated_call, simulate_call
from toy_hotline import PUBLIC, make_toy_app

REAL_API = "https://api.twilio.com"


@pytest.fixture
def app(credentials):
    return make_toy_app(PUBLIC, *credentials, twilio_api_base=REAL_API, fetch_recordings=True)


def test_parse_script():
    assert parse_script("1, 1,3,REC,1", ["HANGUP"]) == ["1", "1", "3", "REC", "1", "HANGUP"]
    assert parse_script(None, ()) == []


def test_in_process_call_points_the_app_at_fake_twilio_and_restores_it(app):
    lines = []
    call = run_simulated_call(app, steps=["1", "REC"], linger=0, echo=lines.append)
    toy = app.extensions["toy"]
    assert toy.api_results == [("download", 200), ("delete", 204)]  # reached FakeTwilio, not Twilio
    assert app.config["HOTLINE_SETTINGS"].twilio_api_base == REAL_API
    assert call.is_over and not toy.bad_signatures
    assert "CALLER presses 1" in lines and "CALLER records 3.0 s (presses #)" in lines
    assert any(line.startswith("TWILIO API: DELETE /2010-04-01/Accounts/") and line.endswith("-> 204") for line in lines)
    assert lines[-1].endswith("recordings left on Twilio: none")


def test_a_factory_gets_fake_twilios_api_base(credentials):
    built = []

    def factory(api_base):
        built.append(make_toy_app(PUBLIC, *credentials, twilio_api_base=api_base, fetch_recordings=True))
        return built[-1]

    run_simulated_call(factory, steps=["1", "REC-HANGUP"], linger=0, echo=lambda line: None)
    assert built[0].extensions["toy"].api_results == [("download", 200), ("delete", 204)]


def test_script_end_hangs_up(app):
    lines = []
    call = run_simulated_call(app, steps=["9"], linger=0, echo=lines.append)
    assert call.ended_by == "caller" and "(end of script)" in lines


def invoke(app, args, input=None):
    return CliRunner().invoke(simulate_call, args, obj=ScriptInfo(create_app=lambda: app), input=input)


def test_command_prints_the_conversation(app):
    result = invoke(app, ["--keys", "2", "--linger", "0"])
    assert result.exit_code == 0, result.output
    assert "HOTLINE: Welcome to the hotline." in result.output
    assert "CALLER presses 2" in result.output
    assert "HOTLINE: We are an independent hotline." in result.output
    assert "HOTLINE hangs up" in result.output


def test_command_with_recording_file(app, tmp_path):
    from simulator import tone_wav

    wav = tmp_path / "report.wav"
    wav.write_bytes(tone_wav(4.0))
    result = invoke(app, ["--press", "1", "--press", "rec", "--recording", str(wav), "--linger", "0"])
    assert result.exit_code == 0, result.output
    assert "CALLER records 4.0 s (presses #)" in result.output


def test_interactive(app):
    result = invoke(app, ["--interactive", "--linger", "0"], input="7\n\n1\nrec hangup\n")
    assert result.exit_code == 0, result.output
    assert "CALLER presses 7" in result.output and "CALLER waits (no input)" in result.output
    assert "(hangs up)" in result.output


def test_interactive_reports_mistakes_and_carries_on(app):
    result = invoke(app, ["--interactive", "--linger", "0"], input="rec\nhangup\n")
    assert result.exit_code == 0, result.output
    assert "! no <Record> is running" in result.output and "CALLER hangs up" in result.output


def test_command_fails_clearly(app):
    result = invoke(app, ["--keys", "12", "--linger", "0"])
    assert result.exit_code == 1
    assert "separate presses" in result.output


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_url_mode_calls_a_running_server(credentials):
    port = free_port()
    app = make_toy_app(PUBLIC, *credentials, twilio_api_base=f"http://127.0.0.1:{port}", fetch_recordings=True)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        lines = []
        call = run_simulated_call(app, url=f"http://127.0.0.1:{server.server_port}", fake_twilio_port=port,
                                  steps=["1", "REC"], linger=0, echo=lines.append)
    finally:
        server.shutdown()
        server.server_close()
    assert call.is_over and app.extensions["toy"].api_results == [("download", 200), ("delete", 204)]
    assert any(f"TWILIO_API_BASE=http://127.0.0.1:{port}" in line for line in lines)


def test_command_built_with_a_factory_calls_a_fresh_app_and_closes_it(app, credentials):
    from simulator.cli import simulate_call_command

    built, closed = [], []

    def factory(api_base):
        built.append(make_toy_app(PUBLIC, *credentials, twilio_api_base=api_base, fetch_recordings=True))
        return built[-1]

    command = simulate_call_command(factory, close_app=closed.append)
    result = CliRunner().invoke(command, ["--keys", "1,REC", "--linger", "0"], obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 0, result.output
    assert built[0].extensions["toy"].api_results == [("download", 200), ("delete", 204)]
    assert closed == built and app.extensions["toy"].received == []
