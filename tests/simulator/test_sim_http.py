"""The same call over real HTTP: the app runs in a server, the simulator is a network client."""
import threading

import pytest
from werkzeug.serving import make_server

from simulator import AppResponseError, CallSimulator, HttpTransport, tone_wav
from toy_hotline import PUBLIC, make_toy_app


@pytest.fixture
def served_app(credentials, fake_twilio):
    app = make_toy_app(PUBLIC, *credentials, twilio_api_base=fake_twilio.api_base, fetch_recordings=True)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_call_over_http_is_signed_for_the_public_url(served_app, fake_twilio, credentials):
    app, base_url = served_app
    toy = app.extensions["toy"]
    transport = HttpTransport(base_url)
    sim = CallSimulator(transport, public_base_url=PUBLIC, account_sid=credentials[0], auth_token=credentials[1], fake_twilio=fake_twilio)
    call = sim.dial()
    assert call.hears("immediate danger")
    call.presses("1")
    call.says(tone_wav(1.0), then="#")
    assert call.is_over and not toy.bad_signatures
    first = toy.received[0]
    assert first.url.startswith(base_url)  # the app sees its local address...
    assert first.headers["X-Forwarded-Host"] == "hotline.example.org"  # ...and the proxy headers
    assert first.headers["X-Forwarded-Proto"] == "https"
    # the app fetched the recording from FakeTwilio and deleted it, after the callback arrived
    assert toy.api_results == [("download", 200), ("delete", 204)]
    [sid] = call.recording_sids
    assert [e.method for e in fake_twilio.requests(sid=sid)] == ["GET", "DELETE"]
    assert fake_twilio.recordings == {}
    transport.close()


def test_an_unreachable_app_is_a_clear_error(fake_twilio, credentials):
    sim = CallSimulator(HttpTransport("http://127.0.0.1:9", timeout=2), public_base_url=PUBLIC,
                        account_sid=credentials[0], auth_token=credentials[1], fake_twilio=fake_twilio)
    with pytest.raises(AppResponseError, match="could not reach the app"):
        sim.dial()
    call = sim.dial(strict=False)
    assert call.is_over and call.ended_by == "error"
