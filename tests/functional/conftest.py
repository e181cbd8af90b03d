"""A running hotline (embedded worker threads on) and Twilio's side of the calls."""
from __future__ import annotations

import pytest

from simulator.call import CallSimulator


@pytest.fixture
def running_app(settings):
    from app import create_app

    app = create_app(settings.with_overrides(worker_mode="inprocess", transcription=False), start_worker=True)
    yield app
    app.extensions["hotline"].dispatcher.stop()
    app.extensions["hotline"].db.dispose()


@pytest.fixture
def twilio(running_app, settings, fake_twilio):
    return CallSimulator.for_flask_app(
        running_app, public_base_url=settings.public_base_url, account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token, fake_twilio=fake_twilio,
    )
