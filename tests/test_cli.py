"""Operators' commands."""
from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from storage.keygen import main as keygen
from tests.support.audio import phone_wav
from tests.support.takes import recorded_take, stored_case_with_contact


def test_keygen_writes_a_key_pair_and_refuses_to_overwrite(tmp_path):
    runner = CliRunner()
    result = runner.invoke(keygen, ["--dir", str(tmp_path / "keys")], env={"HOTLINE_KEY_PASSPHRASE": "a long passphrase here"})
    assert result.exit_code == 0, result.output
    assert "fingerprint" in result.output
    assert (tmp_path / "keys" / "hotline.pub").exists() and (tmp_path / "keys" / "hotline.key").exists()
    again = runner.invoke(keygen, ["--dir", str(tmp_path / "keys")], env={"HOTLINE_KEY_PASSPHRASE": "a long passphrase here"})
    assert again.exit_code != 0 and "refusing to overwrite" in again.output


def test_db_upgrade_and_jobs_commands(app, hotline):
    hotline.settings = hotline.settings.with_overrides(transcription=False)  # `jobs run` loads no model then
    runner = app.test_cli_runner()
    assert "up to date" in runner.invoke(args=["db", "upgrade"]).output
    assert runner.invoke(args=["jobs", "run"]).output.strip() == "ran 0 jobs"


def test_cases_lists_each_take_and_a_failed_transcription_with_its_reason(app, hotline, fake_twilio):
    from storage.models import Recording

    reference, _ = stored_case_with_contact(hotline, fake_twilio)
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

    hotline.settings = hotline.settings.with_overrides(transcription=False)  # `jobs run` loads no model then
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
