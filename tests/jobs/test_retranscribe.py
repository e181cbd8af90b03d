"""The console's `retranscribe`: the old transcript stays until the new one is sealed and committed."""
from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from console.keys import open_item
from jobs.worker import run_until_idle
from storage.blobs import BlobMissing
from storage.models import Case, Recording, SealedItem
from tests.support.audio import phone_wav
from tests.support.takes import recorded_take
from tests.support.transcribers import FakeTranscriber
from transcription.recognizer import Transcript


@pytest.fixture
def console_app(settings_env, settings):
    from console import create_app
    from console.settings import ConsoleSettings

    app = create_app(ConsoleSettings.from_env({**settings_env, "CONSOLE_SECRET_KEY": secrets.token_urlsafe(48)}))
    app.config["TESTING"] = True
    yield app
    app.extensions["console"].db.dispose()


@pytest.fixture
def transcribed_take(hotline, fake_twilio):
    """A stored take with its first transcript; returns (case reference, transcript item id, its blob key)."""
    hotline.workshop.transcriber = FakeTranscriber("the first transcript")
    recorded_take(hotline, fake_twilio, phone_wav(1.0))
    run_until_idle(hotline.workshop)
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording))
        assert recording.transcription_status == "done"
        return session.scalar(select(Case.reference)), recording.transcript_item_id, recording.transcript_item.blob_key


def _retranscribe(console_app, monkeypatch, model, key_passphrase, *args):
    import transcription.model
    import transcription.recognizer

    monkeypatch.setattr(transcription.model, "resolve_model_path", lambda *a: "fake")
    monkeypatch.setattr(transcription.recognizer, "Transcriber", lambda path: model)
    return console_app.test_cli_runner().invoke(args=["retranscribe", *args], env={"HOTLINE_KEY_PASSPHRASE": key_passphrase})


def _text(hotline, private_key, item) -> str:
    with hotline.db.session() as session:
        return Transcript.from_json(open_item(session, private_key, hotline.blobs, item, periods=hotline.periods)).text


def test_a_failed_retranscription_keeps_the_old_transcript(console_app, hotline, transcribed_take, monkeypatch, key_passphrase, private_key):
    reference, old_id, _ = transcribed_take
    result = _retranscribe(console_app, monkeypatch, FakeTranscriber(error=MemoryError()), key_passphrase, reference)
    assert result.exit_code == 0, result.output
    assert "MemoryError" in result.output and "kept" in result.output
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording))
        assert recording.transcript_item_id == old_id and recording.transcription_status == "done"
        assert _text(hotline, private_key, recording.transcript_item) == "the first transcript"


def test_a_retranscription_swaps_in_the_new_transcript_then_destroys_the_old(console_app, hotline, transcribed_take, monkeypatch, key_passphrase, private_key):
    reference, old_id, old_key = transcribed_take
    result = _retranscribe(console_app, monkeypatch, FakeTranscriber("the second transcript"), key_passphrase, reference)
    assert result.exit_code == 0, result.output
    assert f"case {reference}" in result.output and ": done" in result.output
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording))
        transcripts = session.scalars(select(SealedItem).where(SealedItem.kind == "transcript")).all()
        assert [item.id for item in transcripts] == [recording.transcript_item_id]
        assert transcripts[0].blob_key != old_key  # (SQLite may give the new item the old one's id)
        assert _text(hotline, private_key, recording.transcript_item) == "the second transcript"
        with pytest.raises(BlobMissing):
            hotline.blobs.get(session, old_key)


def test_when_the_swap_cannot_commit_the_old_transcript_survives(console_app, hotline, transcribed_take, monkeypatch, key_passphrase, private_key):
    reference, old_id, old_key = transcribed_take
    from sqlalchemy.orm import Session

    model = FakeTranscriber("the second transcript")
    real_commit = Session.commit
    refused = []

    def the_first_commit_after_transcribing_fails(self):
        if model.calls and not refused:
            refused.append(True)
            raise OSError("the database went away")
        return real_commit(self)

    monkeypatch.setattr(Session, "commit", the_first_commit_after_transcribing_fails)
    result = _retranscribe(console_app, monkeypatch, model, key_passphrase, reference)
    monkeypatch.setattr(Session, "commit", real_commit)
    assert refused and result.exit_code != 0
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording))
        assert recording.transcript_item_id == old_id
        assert _text(hotline, private_key, recording.transcript_item) == "the first transcript"
