"""Fixtures for the media tests: a signed-in handler and takes to open (see support.py)."""
from __future__ import annotations

import pytest

from console.keys import Opener
from tests.console.media.support import Take, a_sealed_take, seal_machine_transcript


@pytest.fixture
def untranscribed_take(hotline, fake_twilio) -> Take:
    return a_sealed_take(hotline, fake_twilio)


@pytest.fixture
def take(console, untranscribed_take) -> Take:
    seal_machine_transcript(console, untranscribed_take)
    return untranscribed_take


@pytest.fixture
def handler(people):
    person = people.handler()
    person.signs_in()
    return person


@pytest.fixture
def opener(console, private_key) -> Opener:
    return Opener(private_key, console.blobs, console.periods)
