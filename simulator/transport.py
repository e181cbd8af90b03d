"""How simulated Twilio requests reach the app.

Twilio requests a public URL (what the app is configured with as its public base URL, and what the
signature covers). A transport delivers that request somewhere else: into a Flask test client, or
to a server listening on a local port. Either way the request carries the public URL's signature,
so an app that validates against its configured public URL accepts it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Protocol
from urllib.parse import urlsplit

import requests


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


class HttpTransport:
    """Over the network, to an app server at ``base_url`` (e.g. ``http://127.0.0.1:5000``).

    The path after the public base URL is appended to ``base_url``. Like a reverse proxy or tunnel
    in front of the app, it sends X-Forwarded-Proto/-Host naming the public URL (turn off with
    ``forwarded_headers=False``).
    """

    # A server closes a connection left idle for its keep-alive (gunicorn: 2 s). A request sent on it just as
    # it closes fails with the connection closed by the server, before any answer: a lost webhook. So a
    # connection idle longer than this is not reused, and the request goes on a fresh one.
    IDLE_REUSE_SECONDS = 1.5

    def __init__(self, base_url: str, *, timeout: float = 15.0, forwarded_headers: bool = True,
                 idle_reuse_seconds: float = IDLE_REUSE_SECONDS):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout  # Twilio gives up on a webhook after 15 s
        self.forwarded_headers = forwarded_headers
        self.idle_reuse_seconds = idle_reuse_seconds
        self.session = requests.Session()
        self._last_answer: float | None = None

    def send(self, method, public_base_url, path, form, headers) -> TransportResponse:
        headers = dict(headers)
        if self.forwarded_headers:
            public = urlsplit(public_base_url)
            headers.setdefault("X-Forwarded-Proto", public.scheme)
            headers.setdefault("X-Forwarded-Host", public.netloc)
        if self._last_answer is not None and time.monotonic() - self._last_answer > self.idle_reuse_seconds:
            self.session.close()  # its connections; the session opens new ones
        response = self.session.request(
            method,
            self.base_url + path,
            data=dict(form) if form is not None and method == "POST" else None,
            headers=headers,
            timeout=self.timeout,
            allow_redirects=False,
        )
        self._last_answer = time.monotonic()
        return TransportResponse(
            response.status_code,
            response.content,
            response.headers.get("Content-Type", ""),
            dict(response.headers),
        )

    def close(self) -> None:
        self.session.close()
