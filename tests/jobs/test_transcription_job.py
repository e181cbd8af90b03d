"""The whole recording job with the real model on real phone-quality speech."""
from __future__ import annotations

import io
import secrets
import wave

import pytest
from sqlalchemy import select

from jobs.worker import run_until_idle
from console.keys import open_item
from storage.models import Job, Recording, SealedItem
from tests.support.takes import recorded_take, watch_twilio_deletes
from tests.support import speech_corpus
from transcription.audio import decode_recording
from transcription.recognizer import Transcript

pytestmark = pytest.mark.slow

# The whole pipeline on the corpus's five LibriVox sentences as one 27 s mu-law call: measured 0.155
# word error rate with the pinned small model, the same on every run (dither is off). The bound
# leaves room for another CPU's float rounding, not for a broken audio path (those score above 0.5).
CALL_WER_BOUND = 0.25


@pytest.fixture
def librivox(utterances):
    return [u for key, u in sorted(utterances.items()) if key.startswith("librivox/")]


@pytest.fixture
def call_wav(librivox):
    return speech_corpus.telephone_call(librivox)


@pytest.fixture
def workshop(hotline, transcriber):
    hotline.workshop.transcriber = transcriber
    return hotline.workshop


def _transcript(hotline, private_key, recording_id) -> Transcript:
    with hotline.db.session() as session:
        recording = session.get(Recording, recording_id)
        return Transcript.from_json(open_item(session, private_key, hotline.blobs, recording.transcript_item, periods=hotline.periods))


def test_a_phone_recording_is_transcribed_sealed_and_only_then_deleted_at_twilio(
    hotline, workshop, fake_twilio, call_wav, librivox, private_key, settings
):
    recording_id, sid = recorded_take(hotline, fake_twilio, call_wav)
    transcript_committed_at_delete = watch_twilio_deletes(workshop, settings.database_url, Recording.transcript_item_id)
    run_until_idle(workshop)
    assert transcript_committed_at_delete and transcript_committed_at_delete[0] is not None
    assert sid not in fake_twilio.recordings

    transcript = _transcript(hotline, private_key, recording_id)
    error_rate = speech_corpus.word_error_rate([" ".join(u.reference for u in librivox)], [transcript.text])
    assert error_rate < CALL_WER_BOUND, (error_rate, transcript.text)
    duration = decode_recording(call_wav).duration_seconds
    assert transcript.audio_seconds == pytest.approx(duration)
    starts = [word.start for word in transcript.words]
    assert transcript.words and starts == sorted(starts)
    assert all(0 <= w.start <= w.end <= duration + 0.01 for w in transcript.words)
    assert all(0 <= w.confidence <= 1 for w in transcript.words)
    assert (transcript.model_name, transcript.model_version) == ("vosk-model-en-us", "0.3.45")
    with hotline.db.session() as session:
        recording = session.get(Recording, recording_id)
        assert recording.transcription_status == "done" and recording.transcription_attempts == 1
        kinds = sorted(item.kind for item in session.scalars(select(SealedItem)))
        assert kinds == ["recording", "transcript"]
        # The transcript's words are nowhere in the clear.
        text_on_disk = repr(session.execute(select(SealedItem.note)).all())
        assert all(word.text not in text_on_disk for word in transcript.words if len(word.text) > 4)


def test_corrupt_audio_fails_transcription_at_once_but_keeps_the_audio_and_clears_twilio(
    hotline, workshop, fake_twilio, private_key
):
    corrupt = b"RIFF\x24\x00\x00\x00WAVEfmt " + secrets.token_bytes(400)
    recording_id, sid = recorded_take(hotline, fake_twilio, corrupt)
    run_until_idle(workshop)
    with hotline.db.session() as session:
        recording = session.get(Recording, recording_id)
        assert recording.transcription_status == "failed"
        assert "could not be decoded" in recording.transcription_error
        assert recording.transcription_attempts == 1
        assert open_item(session, private_key, hotline.blobs, recording.audio_item, periods=hotline.periods) == corrupt
        assert session.scalar(select(Job.state)) == "done"
    assert sid not in fake_twilio.recordings


def test_a_transcriber_that_keeps_failing_gives_up_after_the_set_attempts(hotline, workshop, fake_twilio, call_wav, monkeypatch):
    recording_id, sid = recorded_take(hotline, fake_twilio, call_wav)

    def out_of_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(workshop.transcriber, "transcribe", out_of_memory)
    for _ in range(10):
        run_until_idle(workshop)
        with hotline.db.session() as session:
            for job in session.scalars(select(Job)):
                job.run_after = job.created_at  # skip the backoff
            session.commit()
    with hotline.db.session() as session:
        recording = session.get(Recording, recording_id)
        assert recording.transcription_status == "failed"
        assert recording.transcription_attempts == hotline.settings.transcription_max_attempts
        assert "MemoryError" in recording.transcription_error
        assert recording.audio_item_id is not None and recording.transcript_item_id is None
    assert len(fake_twilio.requests("GET", sid)) == hotline.settings.transcription_max_attempts
    assert sid not in fake_twilio.recordings  # deleted only after the final failure was committed


def _wav(pcm: bytes, rate: int, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return buffer.getvalue()


def test_an_empty_recording_gives_an_empty_transcript(hotline, workshop, fake_twilio, private_key):
    recording_id, _ = recorded_take(hotline, fake_twilio, _wav(b"", 8000))
    run_until_idle(workshop)
    transcript = _transcript(hotline, private_key, recording_id)
    assert transcript.text == "" and transcript.words == []


@pytest.mark.parametrize("variant", ["pcm16-16k-stereo", "a-law-8k", "mp3"])
def test_a_recording_in_an_unexpected_encoding_is_still_transcribed(hotline, workshop, fake_twilio, librivox, private_key, variant):
    utterance = librivox[0]
    wav = {
        "pcm16-16k-stereo": lambda: speech_corpus.telephone_wav(utterance, "signed-integer", rate=16000, channels=2),
        "a-law-8k": lambda: speech_corpus.telephone_wav(utterance, "a-law"),
        "mp3": lambda: speech_corpus.telephone_mp3(utterance),
    }[variant]()
    recording_id, _ = recorded_take(hotline, fake_twilio, wav)
    run_until_idle(workshop)
    transcript = _transcript(hotline, private_key, recording_id)
    assert speech_corpus.word_error_rate([utterance.reference], [transcript.text]) < 0.5, transcript.text
