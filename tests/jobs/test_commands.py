"""`flask --app app jobs run`: the same worker as `jobs work`, once, in the foreground."""
from __future__ import annotations

from sqlalchemy import select

from storage.models import Recording
from tests.support.audio import phone_wav
from tests.support.takes import recorded_take
from tests.support.transcribers import FakeTranscriber


def test_jobs_run_transcribes_before_it_deletes_twilio_s_copy(app, hotline, fake_twilio, monkeypatch):
    import wiring

    model = FakeTranscriber()
    monkeypatch.setattr(wiring, "make_transcriber", lambda settings: model)
    recording_id, sid = recorded_take(hotline, fake_twilio, phone_wav(1.0))
    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ran 1 jobs"
    with hotline.db.session() as session:
        recording = session.get(Recording, recording_id)
        assert recording.transcription_status == "done" and recording.transcript_item_id is not None
    assert model.calls == 1 and sid not in fake_twilio.recordings


def test_jobs_run_without_a_usable_model_refuses_and_leaves_twilio_s_copy(app, hotline, fake_twilio, tmp_path):
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    hotline.settings = hotline.settings.with_overrides(vosk_model_path=str(broken))
    recording_id, sid = recorded_take(hotline, fake_twilio, phone_wav(1.0))
    result = app.test_cli_runner().invoke(args=["jobs", "run"])
    assert result.exit_code != 0 and str(broken) in result.output
    assert sid in fake_twilio.recordings and fake_twilio.requests("DELETE") == []
    with hotline.db.session() as session:
        assert session.get(Recording, recording_id).audio_item_id is None


def test_jobs_run_with_transcription_off_stores_takes_untranscribed(app, hotline, fake_twilio):
    hotline.settings = hotline.settings.with_overrides(transcription=False)
    recording_id, sid = recorded_take(hotline, fake_twilio, phone_wav(1.0))
    assert app.test_cli_runner().invoke(args=["jobs", "run"]).output.strip() == "ran 1 jobs"
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording))
        assert recording.audio_item_id is not None and recording.transcription_status == "pending"
    assert sid not in fake_twilio.recordings
