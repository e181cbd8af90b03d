"""A report's ordinary path, counted in statements to the database: on PostgreSQL each is a round trip
that waits for the server's process to get a core, and on a loaded machine those waits are most of a
webhook's time. What each webhook asks of the call comes in one statement, a take finds its place in
its own INSERT, and a new case's reference is tried without a savepoint."""
from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import event

from simulator.call import CallSimulator
from tests.support.audio import phone_wav

# Statements each webhook of one whole report makes, as the load benchmark's calls do (benchmarks/load.py).
ORDINARY_PATH = {
    "/ivr/voice": 2,            # the call's row looked up; the new call
    "/ivr/welcome": 0,
    "/ivr/anonymity": 6,        # the row; the case; its reference's old failures (two tables); its question key; the call
    "/ivr/category": 2,         # the row; the category
    "/ivr/recorded": 4,         # the take looked up; the row, with its takes; the take, in its place; seen by no one yet
    "/ivr/recording-status": 4,  # the take; its status; its job looked up; the job
    "/ivr/after-recording": 1,  # the row (for the read-back)
    "/ivr/status": 5,           # the call ended; takes still waiting; the call's job looked up; the job; (the row)
}


class StatementsByWebhook:
    """Statements the line's engine ran during each request, by the request's path."""

    def __init__(self, app):
        self.counts: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self._path: str | None = None
        event.listen(app.extensions["hotline"].db.engine, "before_cursor_execute", self._statement)
        inner = app.wsgi_app

        def counted(environ, start_response):
            self._path = environ["PATH_INFO"]
            self.requests[self._path] += 1
            try:
                return inner(environ, start_response)
            finally:
                self._path = None

        app.wsgi_app = counted

    def _statement(self, *_args) -> None:
        if self._path is not None:
            self.counts[self._path] += 1

    def per_webhook(self) -> dict[str, int]:
        return {path: self.counts[path] // self.requests[path] for path in self.requests}


@pytest.fixture
def twilio(app, settings, fake_twilio):
    return CallSimulator.for_flask_app(
        app, public_base_url=settings.public_base_url, account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token, fake_twilio=fake_twilio,
    )


def test_a_whole_report_costs_each_webhook_only_the_statements_it_needs(app, twilio):
    counted = StatementsByWebhook(app)
    call = twilio.dial(from_="+447700900123")
    for keys in ("1", "1", "3"):
        call.presses(keys)
    call.says(phone_wav(2.0), then="#")
    call.presses("1")
    assert call.hears("reference")
    if not call.is_over:
        call.hangs_up()
    assert counted.per_webhook() == ORDINARY_PATH
    assert sum(counted.requests.values()) == 8
