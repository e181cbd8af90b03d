"""Operators' commands."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from jobs.worker import run_until_idle
from storage.keygen import main as keygen
from storage.models import Case
from tests.support.audio import phone_wav
from tests.support.takes import recorded_take


def test_keygen_writes_a_key_pair_and_refuses_to_overwrite(tmp_path):
    runner = CliRunner()
    result = runner.invoke(keygen, ["--dir", str(tmp_path / "keys")], env={"HOTLINE_KEY_PASSPHRASE": "a long passphrase here"})
    assert result.exit_code == 0, result.output
    assert "fingerprint" in result.output
    assert (tmp_path / "keys" / "hotline.pub").exists() and (tmp_path / "keys" / "hotline.key").exists()
    again = runner.invoke(keygen, ["--dir", str(tmp_path / "keys")], env={"HOTLINE_KEY_PASSPHRASE": "a long passphrase here"})
    assert again.exit_code != 0 and "refusing to overwrite" in again.output


def _case_with_contact_and_recording(hotline, fake_twilio) -> tuple[str, bytes]:
    wav = phone_wav(1.0)
    recorded_take(hotline, fake_twilio, wav, contact_number="+447700900456")
    run_until_idle(hotline.workshop)
    with hotline.db.session() as session:
        return session.scalar(select(Case.reference)), wav


def test_decrypt_writes_the_case_for_an_operator(app, hotline, fake_twilio, key_passphrase, tmp_path):
    reference, wav = _case_with_contact_and_recording(hotline, fake_twilio)
    out = tmp_path / "case"
    result = app.test_cli_runner().invoke(
        args=["decrypt", reference, "--out", str(out)], env={"HOTLINE_KEY_PASSPHRASE": key_passphrase}
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "case.json").read_text())
    files = {item["kind"]: out / item["file"] for item in summary["items"]}
    assert json.loads(files["contact"].read_text()) == {"phone_number": "+447700900456"}
    assert files["recording"].read_bytes() == wav
    assert out.stat().st_mode & 0o077 == 0


def test_decrypt_with_the_wrong_passphrase_writes_nothing(app, hotline, fake_twilio, tmp_path):
    reference, _ = _case_with_contact_and_recording(hotline, fake_twilio)
    result = app.test_cli_runner().invoke(
        args=["decrypt", reference, "--out", str(tmp_path / "case")], env={"HOTLINE_KEY_PASSPHRASE": "not the passphrase"}
    )
    assert result.exit_code != 0 and "wrong passphrase" in result.output
    assert not (tmp_path / "case").exists()


def test_db_upgrade_and_jobs_commands(app):
    runner = app.test_cli_runner()
    assert "up to date" in runner.invoke(args=["db", "upgrade"]).output
    assert runner.invoke(args=["jobs", "run"]).output.strip() == "ran 0 jobs"


@pytest.mark.slow
def test_retranscribe_recovers_a_take_whose_transcription_failed(app, hotline, fake_twilio, key_passphrase, utterances, model_path, monkeypatch):
    from jobs.worker import run_until_idle
    from storage.models import Recording
    from transcription import speech_corpus

    utterance = next(u for key, u in sorted(utterances.items()) if key.startswith("librivox/"))
    recorded_take(hotline, fake_twilio, speech_corpus.telephone_wav(utterance))
    run_until_idle(hotline.workshop)  # no transcriber on this side: the take waits, audio sealed
    with hotline.db.session() as session:
        reference = session.scalar(select(Case.reference))  # no transcriber on this side: the take waits, audio sealed
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording))
        recording.transcription_status, recording.transcription_error = "failed", "the worker ran out of memory"
        session.commit()

    monkeypatch.setenv("VOSK_MODEL_PATH", str(model_path))
    hotline.settings = hotline.settings.with_overrides(vosk_model_path=str(model_path))
    result = app.test_cli_runner().invoke(args=["retranscribe", "--failed"], env={"HOTLINE_KEY_PASSPHRASE": key_passphrase})
    assert result.exit_code == 0, result.output
    assert f"case {reference}" in result.output and ": done" in result.output
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording))
        assert recording.transcription_status == "done" and recording.transcript_item_id is not None


def test_cases_lists_each_take_and_a_failed_transcription_with_its_reason(app, hotline, fake_twilio):
    from storage.models import Recording

    reference, _ = _case_with_contact_and_recording(hotline, fake_twilio)
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording))
        recording.transcription_status, recording.transcription_error = "failed", "the recording could not be decoded"
        session.commit()
    output = app.test_cli_runner().invoke(args=["cases"]).output
    assert reference in output and "contact details left" in output
    assert "audio sealed, transcription failed: the recording could not be decoded" in output
    assert "7700900456" not in output


def test_jobs_that_gave_up_can_be_retried_by_an_operator(app, hotline, fake_twilio):
    from jobs.recording import run_job
    from storage.models import Job, Recording

    _, sid = recorded_take(hotline, fake_twilio, phone_wav(1.0))
    fake_twilio.fail_next("GET", sid, status=401, times=hotline.settings.job_max_attempts)
    for _ in range(hotline.settings.job_max_attempts):
        run_job(hotline.workshop)
    runner = app.test_cli_runner()
    assert "failed" in runner.invoke(args=["jobs", "status"]).output
    result = runner.invoke(args=["jobs", "retry"])
    assert "Twilio answered 401" in result.output and "queued 1 jobs again" in result.output
    assert runner.invoke(args=["jobs", "run"]).output.strip() == "ran 1 jobs"
    with hotline.db.session() as session:
        assert session.scalar(select(Job.state)) == "done"
        assert session.scalar(select(Recording.audio_item_id)) is not None
