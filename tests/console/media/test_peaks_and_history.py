"""The waveform's peaks, computed by the console; the history of corrections, side by side; the
player partial the case page includes for each take."""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from flask import render_template

from console.transcripts import Segment, changed_words, compare
from storage.models import AuditAction
from tests.console.media.support import audit_entries, posts_correction

TONE_PEAK = 12000 / 32768  # tests/support/audio.phone_wav's amplitude


def test_peaks_have_the_asked_shape_and_follow_the_audio(handler, take):
    peaks = handler.get(take.peaks_url + "?buckets=120").get_json()

    assert peaks["buckets"] == len(peaks["min"]) == len(peaks["max"]) == 120
    assert peaks["duration"] == pytest.approx(2.0)
    assert all(-1 <= low <= 0 <= high <= 1 for low, high in zip(peaks["min"], peaks["max"]))
    assert max(peaks["max"]) == pytest.approx(TONE_PEAK, abs=0.01)
    assert min(peaks["min"]) == pytest.approx(-TONE_PEAK, abs=0.01)
    assert len(handler.get(take.peaks_url).get_json()["max"]) == 800  # the default
    for bad in ("0", "abc", "100000", "-5"):
        response = handler.get(take.peaks_url + "?buckets=" + bad)
        assert response.status_code == 400 and "buckets" in response.get_json()["error"], bad


def test_the_history_shows_each_version_beside_the_one_before_with_the_changes_marked(handler, take):
    posts_correction(handler, take, {"base_version": 1, "start": 1, "end": 1, "text": "walked"})

    page = handler.get(take.history_url)

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-version="1"' in html and 'data-version="2"' in html
    assert "Machine transcript" in html and f"Corrected by {handler.username.title()}" in html
    assert "1 word changed" in html
    version_2 = html[html.index('data-version="2"'):]
    assert '<del class="history-removed">parked</del>' in version_2
    assert '<ins class="history-added">walked</ins>' in version_2
    viewed = audit_entries(handler.app.extensions["console"], AuditAction.TRANSCRIPT_VIEWED)
    assert [entry["detail"] for entry in viewed] == [{"take": take.recording_id}]


def test_the_history_of_a_take_without_a_transcript_says_it_is_not_ready(handler, untranscribed_take):
    page = handler.get(untranscribed_take.history_url)
    assert page.status_code == 200 and "not ready" in page.get_data(as_text=True)


def test_compare_marks_what_a_version_replaced_added_and_removed():
    assert compare(["he", "parked", "by", "the", "gate"], ["he", "walked", "by", "gate", "today"]) == [
        Segment("same", "he"), Segment("removed", "parked"), Segment("added", "walked"),
        Segment("same", "by"), Segment("removed", "the"), Segment("same", "gate"), Segment("added", "today"),
    ]


def test_a_replaced_span_counts_as_its_words_not_twice():
    assert changed_words(["he", "parked", "by", "the"], ["he", "walked", "past", "the"]) == 2
    assert changed_words(["he", "parked"], ["he", "parked", "here", "today"]) == 2
    assert changed_words(["a", "b"], ["a", "b"]) == 0


def test_the_player_partial_carries_what_player_js_and_the_browser_tests_need(console_app):
    take = SimpleNamespace(id=42, number=1, duration_seconds=5, transcription_status="done",
                           is_callback=False, received_label="3 Mar 2025, 14:00")
    with console_app.test_request_context("/cases/12345678"):
        html = render_template("console/media/player.html", take=take)

    assert re.search(r'<section class="player"[^>]* data-recording-id="42"', html)
    assert re.search(r'<audio class="take-audio"[^>]* preload="metadata"[^>]*src="/media/takes/42/audio"', html, re.S)
    assert 'data-transcript-url="/media/takes/42/transcript"' in html
    assert 'data-peaks-url="/media/takes/42/peaks"' in html
    assert 'data-corrections-url="/media/takes/42/corrections"' in html
    assert re.search(r'data-csrf-token="[^"]+"', html)
    assert 'id="correction-text-42"' in html
    assert 'class="save-correction"' in html and 'class="correct-selection' in html
    assert 'class="transcript-version"' in html and 'href="/media/takes/42/history"' in html
    assert 'class="playback-speed"' in html
    # The CSP allows no inline script or style.
    assert "<script" not in html and "style=" not in html and "<style" not in html
