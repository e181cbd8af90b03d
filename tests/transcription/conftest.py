"""Fixtures of the transcription tests. `model_path`, `transcriber` and `utterances` (the real
model, loaded once, and the real speech) come from tests/conftest.py."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import speech_corpus
from transcription.model import fetch_model


@pytest.fixture(scope="session")
def pinned_model() -> Path:
    """The pinned model even when VOSK_MODEL_PATH names another: the tests of fetching and the
    manifest are about this one. Fetched once into $HOTLINE_TEST_DATA or ~/.cache/hotline."""
    cache = Path(os.environ.get("HOTLINE_TEST_DATA") or Path.home() / ".cache" / "hotline").expanduser()
    return fetch_model(cache, progress=lambda line: None)


@pytest.fixture(scope="session")
def phone_calls(utterances: dict[str, speech_corpus.Utterance]) -> dict[str, bytes]:
    """Every utterance as Twilio would send it: 8 kHz mu-law WAV, telephone band."""
    return {utterance_id: speech_corpus.telephone_wav(utterance) for utterance_id, utterance in utterances.items()}
