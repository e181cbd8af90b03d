"""A handler corrects a word or a span: each save is a new sealed version; the machine's never changes."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from console.transcripts import MAX_CORRECTION_CHARS, CorrectionRefused, replace_span
from storage.models import AuditAction, CaseEvent, CaseEventKind, Recording, TranscriptVersion
from tests.console.media.support import MACHINE_WORDS, audit_entries, machine_transcript, posts_correction
from transcription.recognizer import Transcript


def _machine_blob(console, take) -> tuple[int, bytes]:
    with console.db.session() as session:
        item = session.get(Recording, take.recording_id).transcript_item
        return item.id, console.blobs.get(session, item.blob_key)


def test_a_correction_is_version_2_and_leaves_the_machines_version_1_untouched(console, handler, take):
    before = _machine_blob(console, take)

    response = posts_correction(handler, take, {"base_version": 1, "start": 1, "end": 1, "text": "walked"})

    assert response.status_code == 200
    document = response.get_json()
    assert (document["version"], document["machine"]) == (2, False)
    assert document["author"] == handler.username.title()  # the display name given at invitation
    assert [w["text"] for w in document["words"]] == ["he", "walked", "by", "the", "gate"]
    assert _machine_blob(console, take) == before
    with console.db.session() as session:
        version = session.scalar(select(TranscriptVersion).where(TranscriptVersion.recording_id == take.recording_id))
        assert (version.version, version.author_id, version.item.kind) == (2, handler.user_id, "transcript-version")
        event = session.scalar(select(CaseEvent).where(CaseEvent.kind == CaseEventKind.CORRECTION))
        assert (event.recording_id, event.new_value, event.old_value, event.actor_id) == (
            take.recording_id, "2", "1", handler.user_id)
    corrected = audit_entries(console, AuditAction.TRANSCRIPT_CORRECTED)
    assert corrected == [{"actor_id": handler.user_id, "case": take.reference,
                          "detail": {"take": take.recording_id, "version": 2}}]


def test_the_corrected_words_share_the_time_of_the_span_they_replace(handler, take):
    # "parked by" (0.30 to 0.95 s) becomes three words, timed in proportion to their length.
    document = posts_correction(handler, take, {"base_version": 1, "start": 1, "end": 2,
                                                "text": "parked right by"}).get_json()
    words = document["words"]
    assert [w["text"] for w in words] == ["he", "parked", "right", "by", "the", "gate"]
    new = words[1:4]
    assert new[0]["start"] == MACHINE_WORDS[1].start and new[-1]["end"] == MACHINE_WORDS[2].end
    assert new[0]["end"] == new[1]["start"] and new[1]["end"] == new[2]["start"]  # no gaps, no overlaps
    durations = [w["end"] - w["start"] for w in new]
    assert durations[0] == pytest.approx(0.65 * 6 / 13, abs=0.002)  # "parked" is 6 of the 13 letters
    assert all(w["corrected"] and w["confidence"] == 1.0 for w in new)
    untouched = [words[0], *words[4:]]
    assert all(not w["corrected"] for w in untouched)
    assert [(w["start"], w["end"]) for w in untouched] == [(0.10, 0.30), (0.95, 1.05), (1.05, 1.50)]


def test_a_correction_based_on_an_old_version_is_refused_with_409(people, take):
    first, second = people.handler(), people.handler()
    first.signs_in()
    second.signs_in()
    assert posts_correction(first, take, {"base_version": 1, "start": 0, "end": 0, "text": "she"}).status_code == 200

    late = posts_correction(second, take, {"base_version": 1, "start": 4, "end": 4, "text": "gates"})

    assert late.status_code == 409
    assert late.get_json()["newest_version"] == 2
    assert "reload" in late.get_json()["error"].lower()
    assert len(audit_entries(first.app.extensions["console"], AuditAction.TRANSCRIPT_CORRECTED)) == 1


MALFORMED = [
    (b"{not json", "json object"),
    ([1, 2, 3], "json object"),
    ({"start": 0, "end": 0, "text": "x"}, "base_version"),
    ({"base_version": 1, "start": "0", "end": 0, "text": "x"}, "start"),
    ({"base_version": 1, "start": True, "end": 0, "text": "x"}, "start"),
    ({"base_version": 1, "start": -1, "end": 0, "text": "x"}, "start"),
    ({"base_version": 1, "start": 3, "end": 2, "text": "x"}, "end"),
    ({"base_version": 1, "start": 0, "end": 5, "text": "x"}, "not in this transcript"),
    ({"base_version": 1, "start": 0, "end": 0, "text": 7}, "text"),
    ({"base_version": 1, "start": 0, "end": 0, "text": "x" * (MAX_CORRECTION_CHARS + 1)}, "at most"),
    ({"base_version": 1, "start": 0, "end": 0, "text": "bad\x00word"}, "control"),
]


def test_a_malformed_correction_gets_400_with_a_message_and_changes_nothing(console, handler, take):
    # One take for all the cases: each is refused before anything is written, so none affects the next.
    for body, complaint in MALFORMED:
        response = posts_correction(handler, take, body)
        assert response.status_code == 400, body
        assert complaint in response.get_json()["error"].lower(), body
    with console.db.session() as session:
        assert session.scalars(select(TranscriptVersion)).all() == []
    assert audit_entries(console, AuditAction.TRANSCRIPT_CORRECTED) == []


def test_a_correction_without_the_csrf_header_is_refused(handler, take):
    response = handler.client.post(take.corrections_url, json={"base_version": 1, "start": 0, "end": 0, "text": "she"})
    assert response.status_code == 400
    assert handler.get(take.transcript_url).get_json()["version"] == 1


def test_a_take_without_a_transcript_cannot_be_corrected(handler, untranscribed_take):
    response = posts_correction(handler, untranscribed_take, {"base_version": 1, "start": 0, "end": 0, "text": "x"})
    assert response.status_code == 400
    assert "no transcript" in response.get_json()["error"]


def test_an_empty_correction_removes_the_selected_words():
    corrected = replace_span(machine_transcript(), 2, 3, [])
    assert [word.text for word in corrected.words] == ["he", "parked", "gate"]


def test_replace_span_refuses_indices_outside_the_transcript():
    with pytest.raises(CorrectionRefused):
        replace_span(machine_transcript(), 0, len(MACHINE_WORDS), ["x"])


def test_the_corrected_mark_survives_the_sealed_json_and_old_transcripts_still_read():
    corrected = replace_span(machine_transcript(), 0, 0, ["she"])
    assert Transcript.from_json(corrected.to_json()).words[0].corrected is True
    # A machine transcript written before corrections existed has no "corrected" key, and still has none.
    machine_json = machine_transcript().to_json()
    assert b"corrected" not in machine_json
    assert all(not word.corrected for word in Transcript.from_json(machine_json).words)
