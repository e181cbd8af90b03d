"""Stand-ins for the speech model, for job tests that are about timing and races, not recognition.

They go through the real audio path (decode, resample) and return a fixed transcript; one can be
held mid-transcription until the test lets it go, as a long recording holds a real worker.
"""
from __future__ import annotations

import threading

from transcription.recognizer import Transcript, Word


class FakeTranscriber:
    sample_rate = 16000

    def __init__(self, text: str = "the officer took the money", *, hold: bool = False, error: Exception | None = None):
        self.text = text
        self.error = error
        self.started = threading.Event()  # set when a transcription begins
        self.release = threading.Event()  # a held transcriber waits for this
        if not hold:
            self.release.set()
        self.calls = 0

    def load(self) -> None:
        pass

    def transcribe(self, pcm: bytes, sample_rate: int) -> Transcript:
        self.calls += 1
        self.started.set()
        if not self.release.wait(60):
            raise TimeoutError("the test never released the transcriber")
        if self.error is not None:
            raise self.error
        words = [Word(word, float(i), float(i) + 0.5, 0.9) for i, word in enumerate(self.text.split())]
        return Transcript(self.text, words, "fake-model", "0", 0.0, len(pcm) / 2 / sample_rate)
