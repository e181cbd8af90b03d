import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:  # run from anywhere, with or without `python -m`
    sys.path.insert(0, ROOT)
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from simulator import CallSimulator, FakeTwilio  # noqa: E402
from simulator.sids import new_account_sid, new_auth_token  # noqa: E402
from toy_hotline import PUBLIC, make_toy_app  # noqa: E402


@pytest.fixture
def credentials():
    return new_account_sid(), new_auth_token()


@pytest.fixture
def fake_twilio(credentials):
    with FakeTwilio(*credentials) as fake:
        yield fake


@pytest.fixture
def toy_app(credentials, fake_twilio):
    return make_toy_app(PUBLIC, *credentials, twilio_api_base=fake_twilio.api_base)


@pytest.fixture
def toy(toy_app):
    return toy_app.extensions["toy"]


@pytest.fixture
def sim(toy_app, fake_twilio, credentials):
    account_sid, auth_token = credentials
    return CallSimulator.for_flask_app(
        toy_app, public_base_url=PUBLIC, account_sid=account_sid, auth_token=auth_token, fake_twilio=fake_twilio
    )
