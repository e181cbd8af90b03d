"""How simulated Twilio requests reach the app.

Twilio requests a public URL (what the app is configured with as its public base URL, and what the
signature covers). A transport delivers that request somewhere else: into a Flask test client, or
to a server listening on a local port. Either way the request carries the public URL's signature,
so an app that validates against its configured public URL accepts it.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Mapping, Protocol
from urllib.parse import urlencode, urlsplit


@dataclass(frozen=True)
class TransportResponse:
    status: int
    body: bytes
    content_type: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class Transport(Protocol):
    def send(
        self,
        method: str,
        public_base_url: str,
        path: str,
        form: Mapping[str, str] | None,
        headers: Mapping[str, str],
    ) -> TransportResponse:
        """Deliver a request for ``public_base_url + path`` (path includes any query string)."""


class FlaskClientTransport:
    """In-process: requests go through ``app.test_client()``.

    The test client is told the public base URL, so inside the app ``request.url`` is exactly the
    URL Twilio would have requested (scheme, host and any path prefix as script root).
    """

    def __init__(self, client):
        self.client = client

    def send(self, method, public_base_url, path, form, headers) -> TransportResponse:
        response = self.client.open(
            path,
            base_url=public_base_url + "/",
            method=method,
            data=dict(form) if form is not None and method == "POST" else None,
            headers=dict(headers),
        )
        try:
            return TransportResponse(
                response.status_code,
                response.get_data(),
                response.headers.get("Content-Type", ""),
                dict(response.headers),
            )
        finally:
            response.close()


class TransportError(Exception):
    """The request got no answer: the app could not be reached, closed the connection, or timed out."""


class HttpTransport:
    """Over the network, to an app server at ``base_url`` (e.g. ``http://127.0.0.1:5000``).

    The path after the public base URL is appended to ``base_url``. Like a reverse proxy or tunnel
    in front of the app, it sends X-Forwarded-Proto/-Host naming the public URL (turn off with
    ``forwarded_headers=False``).

    Plain http.client, with its connections kept alive: Twilio runs on its own machines, and a load run
    (benchmarks/load.py) shares this machine's cores with the servers it measures. Through requests, each
    webhook cost the load generator more CPU than the bare endpoint spent answering it.
    """

    # A server closes a connection left idle for its keep-alive (gunicorn: 2 s). A request sent on it just as
    # it closes fails with the connection closed by the server, before any answer: a lost webhook. So a
    # connection idle longer than this is not reused, and the request goes on a fresh one.
    IDLE_REUSE_SECONDS = 1.5

    def __init__(self, base_url: str, *, timeout: float = 15.0, forwarded_headers: bool = True,
                 idle_reuse_seconds: float = IDLE_REUSE_SECONDS):
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._connection_class = HTTPSConnection if parts.scheme == "https" else HTTPConnection
        self._netloc = parts.netloc
        self._prefix = parts.path
        self.timeout = timeout  # Twilio gives up on a webhook after 15 s
        self.forwarded_headers = forwarded_headers
        self.idle_reuse_seconds = idle_reuse_seconds
        # Idle connections and when each last answered; a simulated call may send a status callback on
        # another thread while its own request is out, so each request takes one of its own.
        self._idle: list[tuple[HTTPConnection, float]] = []
        self._lock = threading.Lock()

    def _connection(self) -> HTTPConnection:
        with self._lock:
            while self._idle:
                connection, answered_at = self._idle.pop()
                if time.monotonic() - answered_at <= self.idle_reuse_seconds:
                    return connection
                connection.close()
        return self._connection_class(self._netloc, timeout=self.timeout)

    def send(self, method, public_base_url, path, form, headers) -> TransportResponse:
        headers = dict(headers)
        if self.forwarded_headers:
            public = urlsplit(public_base_url)
            headers.setdefault("X-Forwarded-Proto", public.scheme)
            headers.setdefault("X-Forwarded-Host", public.netloc)
        body = None
        if form is not None and method == "POST":
            body = urlencode(dict(form)).encode("ascii")
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        connection = self._connection()
        try:
            connection.request(method, self._prefix + path, body=body, headers=headers)
            response = connection.getresponse()
            content = response.read()
        except (OSError, HTTPException) as error:
            connection.close()
            raise TransportError(f"{type(error).__name__}: {error}") from error
        if response.will_close:
            connection.close()
        else:
            with self._lock:
                self._idle.append((connection, time.monotonic()))
        return TransportResponse(
            response.status,
            content,
            response.getheader("Content-Type", ""),
            dict(response.getheaders()),
        )

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()
