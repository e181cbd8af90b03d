"""Offline suggestions of what to hide, and what hiding does to the text and the audio's timeline."""
from __future__ import annotations

import pytest

from console.referrals.redaction import CandidateKind, Span, candidates, redacted_text, silent_spans


def suggested(sentence: str) -> list[tuple[str, str]]:
    words = sentence.split()
    return [(words[index], kind.value) for index, kind in candidates(words).items()]


@pytest.mark.parametrize("sentence, expected", [
    ("his collar number is four five six seven and he", [("four", "collar-number"), ("five", "collar-number"),
                                                          ("six", "collar-number"), ("seven", "collar-number")]),
    ("warrant card three two one", [("three", "collar-number"), ("two", "collar-number"), ("one", "collar-number")]),
    ("PC 4567 and pc4568 were there", [("4567", "collar-number"), ("pc4568", "collar-number")]),
    ("ring oh seven seven double oh nine double oh one two three",
     [(w, "phone") for w in "oh seven seven double oh nine double oh one two three".split()]),
    ("my number is 07700 900123 ok", [("07700", "phone"), ("900123", "phone")]),
    ("she lives at s w one a one a a now", [(w, "postcode") for w in "s w one a one a a".split()]),
    ("parked at SW1A 1AA", [("SW1A", "postcode"), ("1AA", "postcode")]),
    ("the car was a b one two c d e blue", [(w, "vehicle") for w in "a b one two c d e".split()]),
    ("car AB12 CDE outside", [("AB12", "vehicle"), ("CDE", "vehicle")]),
    ("mail john dot smith at example dot co dot uk please",
     [(w, "email") for w in "john dot smith at example dot co dot uk".split()]),
    ("or write to a.b@example.com thanks", [("a.b@example.com", "email")]),
])
def test_identifying_details_are_suggested_in_spoken_and_written_forms(sentence, expected):
    assert suggested(sentence) == expected


@pytest.mark.parametrize("sentence", [
    "oh I see he was at the station at nine",
    "it happened two or three times in one week",
    "we went to the shop at the end of the road",
])
def test_ordinary_speech_suggests_nothing(sentence):
    assert suggested(sentence) == []


def test_a_run_of_hidden_words_reads_as_one_redaction():
    text, runs = redacted_text("sergeant john quillfeather took the money".split(), {1, 2, 5})
    assert (text, runs) == ("sergeant [redacted] took the [redacted]", 2)


def test_silence_is_padded_clipped_and_merged():
    timings = [(0.0, 0.4), (0.5, 0.9), (2.0, 2.4)]
    assert silent_spans(timings, {0, 1, 2}, duration=2.45, pad=0.15) == [Span(0.0, 1.05), Span(1.85, 2.45)]
    assert CandidateKind.PHONE.label == "phone number"
