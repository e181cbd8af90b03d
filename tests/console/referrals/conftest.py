"""Referral tests: a signed-in handler and admin, forces, and cases whose takes have audio and words."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import Force
from tests.console.cases.helpers import Take
from tests.console.referrals.support import seal_take_audio, seal_transcript, voiced_wav, words_every


@pytest.fixture
def force(console, admin) -> int:
    """A force without a public key, registered through the forces page."""
    return registered(console, admin, "Marrowshire Police Professional Standards")


def registered(console, admin, name: str, recipient: str = "") -> int:
    response = admin.post_form("/referrals/forces", {"name": name, "recipient": recipient})
    assert response.status_code == 302, response.get_data(as_text=True)
    with console.db.session() as session:
        return session.scalar(select(Force.id).where(Force.name == name))


SPOKEN = "he said his collar number is four five six seven and that sergeant quillfeather took the money"


@pytest.fixture
def spoken_case(console, cases):
    """make(anonymous=...) -> (reference, recording id, words, wav): one take whose audio is a steady
    voice for as long as its words last."""

    def make(anonymous: bool = False, spoken: str = SPOKEN):
        words = words_every(spoken)
        reference = cases.case(anonymous=anonymous, contact=None if anonymous else "+447700900123",
                               takes=[Take(seconds=int(words[-1].end) + 1)])
        [recording_id] = cases.takes_of(reference)
        wav = voiced_wav(words[-1].end + 0.5)
        seal_take_audio(console, recording_id, wav)
        seal_transcript(console, recording_id, words)
        return reference, recording_id, words, wav

    return make
