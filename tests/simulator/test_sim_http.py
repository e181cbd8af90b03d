"""The same call over real HTTP: the app runs in a server, the simulator is a network client."""
import socket
import threading
import time

import pytest
from werkzeug.serving import make_server

from simulator import AppResponseError, CallSimulator, HttpTransport, TransportError, tone_wav
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


class KeepAliveServer:
    """Answers each request with 200 and keeps the connection open, or (close_when_reused) closes a
    connection that brings a second request without answering it: a server whose keep-alive ran out just
    as the client reused the connection."""

    def __init__(self, close_when_reused: bool, answer_together: int = 1):
        self.close_when_reused = close_when_reused
        # With answer_together > 1, no request is answered until that many are waiting at once.
        self.together = threading.Barrier(answer_together, timeout=5)
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection) -> None:
        with connection:
            for served in range(100):
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += connection.recv(65536)
                if served and self.close_when_reused:
                    return
                if self.together.parties > 1 and served == 0:
                    self.together.wait()
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 11\r\n\r\n<Response/>")

    def close(self) -> None:
        self.listener.close()


def test_a_connection_left_idle_is_not_reused_where_the_server_may_be_closing_it():
    server = KeepAliveServer(close_when_reused=True)
    transport = HttpTransport(server.url, idle_reuse_seconds=0.2)
    try:
        assert transport.send("POST", PUBLIC, "/ivr/voice", {"CallSid": "CA1"}, {}).status == 200
        time.sleep(0.3)  # idle past the transport's limit, as a caller in a stalled run
        assert transport.send("POST", PUBLIC, "/ivr/welcome", {"Digits": "1"}, {}).status == 200
        assert server.connections == 2
    finally:
        transport.close()
        server.close()


def test_a_connection_in_use_is_kept():
    server = KeepAliveServer(close_when_reused=False)
    transport = HttpTransport(server.url, idle_reuse_seconds=5)
    try:
        for step in ("voice", "welcome", "anonymity"):
            assert transport.send("POST", PUBLIC, f"/ivr/{step}", {"CallSid": "CA1"}, {}).status == 200
        assert server.connections == 1
    finally:
        transport.close()
        server.close()


def test_a_connection_the_server_closes_unanswered_is_a_transport_error_and_the_next_request_a_new_one():
    server = KeepAliveServer(close_when_reused=True)
    transport = HttpTransport(server.url, idle_reuse_seconds=5)
    try:
        assert transport.send("POST", PUBLIC, "/ivr/voice", {"CallSid": "CA1"}, {}).status == 200
        with pytest.raises(TransportError):
            transport.send("POST", PUBLIC, "/ivr/welcome", {"Digits": "1"}, {})
        assert transport.send("POST", PUBLIC, "/ivr/welcome", {"Digits": "1"}, {}).status == 200
        assert server.connections == 2
    finally:
        transport.close()
        server.close()


def test_requests_at_once_each_go_on_a_connection_of_their_own_and_both_are_kept():
    # A simulated call's status callback may go out on another thread while its own request is answered.
    server = KeepAliveServer(close_when_reused=False, answer_together=2)
    transport = HttpTransport(server.url, idle_reuse_seconds=5)
    statuses = []
    try:
        senders = [threading.Thread(target=lambda: statuses.append(
            transport.send("POST", PUBLIC, "/ivr/status", {"CallSid": "CA1"}, {}).status)) for _ in range(2)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(10)
        assert statuses == [200, 200] and server.connections == 2
        for step in ("voice", "welcome"):
            assert transport.send("POST", PUBLIC, f"/ivr/{step}", {"CallSid": "CA1"}, {}).status == 200
        assert server.connections == 2
    finally:
        transport.close()
        server.close()
