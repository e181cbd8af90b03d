"""A handler reads a take's transcript beside the audio: the newest version, with its words' timings."""
from __future__ import annotations

from sqlalchemy import select

from console.transcripts import newest_transcript
from storage.models import AuditAction, Recording
from tests.console.media.support import MACHINE_WORDS, audit_entries, posts_correction


def test_the_transcript_is_the_machines_version_1_with_every_words_timing(handler, take):
    document = handler.get(take.transcript_url).get_json()

    assert document["status"] == "done"
    assert (document["version"], document["machine"], document["author"]) == (1, True, None)
    assert document["low_confidence"] == handler.app.config["CONSOLE_SETTINGS"].low_confidence
    assert [(w["text"], w["start"], w["end"], w["confidence"], w["corrected"]) for w in document["words"]] == [
        (w.text, w.start, w.end, w.confidence, False) for w in MACHINE_WORDS]
    assert [w["index"] for w in document["words"]] == list(range(len(MACHINE_WORDS)))
    assert [v["version"] for v in document["versions"]] == [1]


def test_reading_a_transcript_is_audited_once_per_session_in_ten_minutes(handler, take):
    for _ in range(3):
        handler.get(take.transcript_url)
    viewed = audit_entries(handler.app.extensions["console"], AuditAction.TRANSCRIPT_VIEWED)
    assert viewed == [{"actor_id": handler.user_id, "case": take.reference, "detail": {"take": take.recording_id}}]


def test_a_take_still_being_transcribed_says_so_and_opens_nothing(handler, untranscribed_take):
    response = handler.get(untranscribed_take.transcript_url)
    assert response.status_code == 200
    assert response.get_json()["status"] == "pending"
    assert response.get_json()["words"] == []
    assert audit_entries(handler.app.extensions["console"], AuditAction.TRANSCRIPT_VIEWED) == []


def test_a_failed_transcription_says_so(handler, hotline, untranscribed_take):
    with hotline.db.session() as session:
        session.get(Recording, untranscribed_take.recording_id).transcription_status = "failed"
        session.commit()
    assert handler.get(untranscribed_take.transcript_url).get_json()["status"] == "failed"


def test_an_earlier_version_can_be_asked_for(handler, take):
    posts_correction(handler, take, {"base_version": 1, "start": 1, "end": 1, "text": "walked"})
    assert handler.get(take.transcript_url).get_json()["version"] == 2
    earlier = handler.get(take.transcript_url + "?version=1").get_json()
    assert earlier["version"] == 1 and earlier["words"][1]["text"] == "parked"
    assert [v["version"] for v in earlier["versions"]] == [1, 2]


def test_a_version_that_is_not_a_number_or_not_there_is_a_clear_4xx(handler, take):
    bad = handler.get(take.transcript_url + "?version=two")
    assert bad.status_code == 400 and "version" in bad.get_json()["error"]
    missing = handler.get(take.transcript_url + "?version=7")
    assert missing.status_code == 404 and "7" in missing.get_json()["error"]


def test_newest_transcript_is_the_newest_correction(console, handler, take, opener):
    with console.db.session() as session:
        recording = session.get(Recording, take.recording_id)
        assert newest_transcript(session, opener, recording)[0] == 1
    posts_correction(handler, take, {"base_version": 1, "start": 0, "end": 0, "text": "she"})
    posts_correction(handler, take, {"base_version": 2, "start": 4, "end": 4, "text": "gates"})
    with console.db.session() as session:
        recording = session.scalar(select(Recording).where(Recording.id == take.recording_id))
        number, transcript = newest_transcript(session, opener, recording)
    assert number == 3
    assert [word.text for word in transcript.words] == ["she", "parked", "by", "the", "gates"]
    assert transcript.text == "she parked by the gates"


def test_newest_transcript_is_none_before_there_is_one(console, untranscribed_take, opener):
    with console.db.session() as session:
        assert newest_transcript(session, opener, session.get(Recording, untranscribed_take.recording_id)) is None


def test_someone_not_signed_in_gets_401_for_every_media_route(console_app, take):
    client = console_app.test_client()
    for url in (take.transcript_url, take.peaks_url, take.history_url):
        assert client.get(url).status_code == 401, url
    assert client.post(take.corrections_url, json={"base_version": 1, "start": 0, "end": 0, "text": "x"}).status_code == 401
