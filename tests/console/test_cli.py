"""The console side's operator commands: those that need the private key live here, not in the line's app."""
from __future__ import annotations

import json
import os
import re
import stat

import pytest
from sqlalchemy import select

from storage.models import AuditAction, AuditEntry, Case, Recording
from tests.support.takes import recorded_take, stored_case_with_contact


def test_decrypt_writes_the_case_for_an_operator(console_app, hotline, fake_twilio, key_passphrase, tmp_path):
    reference, wav = stored_case_with_contact(hotline, fake_twilio)
    out = tmp_path / "case"
    result = console_app.test_cli_runner().invoke(
        args=["decrypt", reference, "--out", str(out)], env={"HOTLINE_KEY_PASSPHRASE": key_passphrase}
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "case.json").read_text())
    files = {item["kind"]: out / item["file"] for item in summary["items"]}
    assert json.loads(files["contact"].read_text()) == {"phone_number": "+447700900456"}
    assert files["recording"].read_bytes() == wav
    assert out.stat().st_mode & 0o077 == 0


def test_decrypt_with_the_wrong_passphrase_writes_nothing(console_app, hotline, fake_twilio, tmp_path):
    reference, _ = stored_case_with_contact(hotline, fake_twilio)
    result = console_app.test_cli_runner().invoke(
        args=["decrypt", reference, "--out", str(tmp_path / "case")], env={"HOTLINE_KEY_PASSPHRASE": "not the passphrase"}
    )
    assert result.exit_code != 0 and "wrong passphrase" in result.output
    assert not (tmp_path / "case").exists()


@pytest.mark.slow
def test_retranscribe_recovers_a_take_whose_transcription_failed(console_app, console, hotline, fake_twilio, key_passphrase, utterances, model_path, monkeypatch):
    from jobs.worker import run_until_idle
    from storage.models import Recording
    from tests.support import speech_corpus

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
    console.settings = console.settings.with_overrides(vosk_model_path=str(model_path))
    result = console_app.test_cli_runner().invoke(args=["retranscribe", "--failed"], env={"HOTLINE_KEY_PASSPHRASE": key_passphrase})
    assert result.exit_code == 0, result.output
    assert f"case {reference}" in result.output and ": done" in result.output
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording))
        assert recording.transcription_status == "done" and recording.transcript_item_id is not None


def test_decrypt_is_audited(console_app, console, hotline, fake_twilio, key_passphrase, tmp_path):
    reference, _ = stored_case_with_contact(hotline, fake_twilio)
    console_app.test_cli_runner().invoke(
        args=["decrypt", reference, "--out", str(tmp_path / "case")], env={"HOTLINE_KEY_PASSPHRASE": key_passphrase}
    )
    with console.db.session() as session:
        entries = session.scalars(select(AuditEntry)).all()
    assert [(e.action, e.case_reference, e.actor) for e in entries] == [(AuditAction.CASE_DECRYPTED, reference, "operator")]


def test_create_admin_prints_a_one_time_enrolment_link(console_app, console, key_passphrase):
    result = console_app.test_cli_runner().invoke(
        args=["create-admin", "ada", "--name", "Ada Admin"], env={"HOTLINE_KEY_PASSPHRASE": key_passphrase}
    )
    assert result.exit_code == 0, result.output
    assert f"{console.settings.public_url}/enrol/" in result.output
    again = console_app.test_cli_runner().invoke(
        args=["create-admin", "ada", "--name", "Ada Admin"], env={"HOTLINE_KEY_PASSPHRASE": key_passphrase}
    )
    assert again.exit_code != 0 and "taken" in again.output


def test_create_admin_needs_the_right_passphrase(console_app):
    result = console_app.test_cli_runner().invoke(
        args=["create-admin", "ada", "--name", "Ada"], env={"HOTLINE_KEY_PASSPHRASE": "not the passphrase at all"}
    )
    assert result.exit_code != 0 and "wrong passphrase" in result.output


def test_audit_verify_reports_an_intact_chain_and_names_a_broken_link(console_app, console):
    from console.audit.services import record

    with console.db.session() as session:
        for _ in range(3):
            record(session, AuditAction.INBOX_VIEWED, actor_label="test")
        session.commit()
    runner = console_app.test_cli_runner()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and "3 entries" in result.output
    with console.db.session() as session:
        session.get(AuditEntry, 2).actor = "someone else"
        session.commit()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code != 0 and "entry 2" in result.output


def test_retranscribe_leaves_a_corrected_take_alone_and_audits_what_it_opens(
        console_app, console, hotline, fake_twilio, key_passphrase, private_key, people, model_path):
    """Corrections are built on the machine transcript's words and timings: replacing it under them
    would leave versions that no longer fit the audio, so such a take is skipped and says why."""
    from console.keys import Opener
    from console.transcripts import correct
    from storage.models import Recording, TranscriptVersion, User
    from tests.console.media.support import a_sealed_take, seal_machine_transcript

    corrected, untouched = a_sealed_take(hotline, fake_twilio), a_sealed_take(hotline, fake_twilio)
    for take in (corrected, untouched):
        seal_machine_transcript(console, take)
    handler = people.handler()
    with console.db.session() as session:
        correct(session, Opener(private_key, console.blobs, console.periods), console.sealer, session.get(User, handler.user_id),
                session.get(Recording, corrected.recording_id), 1, 1, 1, "barked")
        session.commit()
        before = session.scalar(select(Recording.transcript_item_id).where(Recording.id == corrected.recording_id))

    console.settings = console.settings.with_overrides(vosk_model_path=str(model_path))
    result = console_app.test_cli_runner().invoke(
        args=["retranscribe", corrected.reference, untouched.reference], env={"HOTLINE_KEY_PASSPHRASE": key_passphrase})
    assert result.exit_code == 0, result.output
    assert f"case {corrected.reference} take {corrected.recording_id}: skipped" in result.output
    assert f"case {untouched.reference} take {untouched.recording_id}: " in result.output
    with console.db.session() as session:
        assert session.scalar(select(Recording.transcript_item_id).where(Recording.id == corrected.recording_id)) == before
        assert session.scalar(select(TranscriptVersion.version).where(TranscriptVersion.recording_id == corrected.recording_id)) == 2
        opened = session.scalars(select(AuditEntry).where(AuditEntry.action == AuditAction.AUDIO_PLAYED)).all()
    assert [(entry.case_reference, entry.actor) for entry in opened] == [(untouched.reference, "operator")]


# --- decrypt --out: a new private folder, nothing followed, nothing overwritten -----------------------

def _decrypt(console_app, reference, out, key_passphrase):
    return console_app.test_cli_runner().invoke(
        args=["decrypt", reference, "--out", str(out)], env={"HOTLINE_KEY_PASSPHRASE": key_passphrase})


def test_decrypt_refuses_an_existing_folder_and_leaves_its_mode_alone(console_app, hotline, fake_twilio, key_passphrase, tmp_path):
    """Run with --out /tmp it made /tmp 0700."""
    reference, _ = stored_case_with_contact(hotline, fake_twilio)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    result = _decrypt(console_app, reference, shared, key_passphrase)
    assert result.exit_code != 0 and "already exists" in result.output
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777 and list(shared.iterdir()) == []


def test_decrypt_follows_no_planted_symlink(console_app, hotline, fake_twilio, key_passphrase, tmp_path):
    reference, _ = stored_case_with_contact(hotline, fake_twilio)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    planted_folder = tmp_path / "case"
    planted_folder.symlink_to(elsewhere)  # the folder itself
    assert _decrypt(console_app, reference, planted_folder, key_passphrase).exit_code != 0
    inside = tmp_path / "with-a-planted-file"
    inside.mkdir()
    (inside / "case.json").symlink_to(elsewhere / "overwritten.json")  # or a file in it
    assert _decrypt(console_app, reference, inside, key_passphrase).exit_code != 0
    assert list(elsewhere.iterdir()) == []


def test_decrypt_writes_private_files_with_clean_names(console_app, console, hotline, fake_twilio, key_passphrase, tmp_path):
    from storage.cases import find_case

    reference, _ = stored_case_with_contact(hotline, fake_twilio)
    with console.db.session() as session:  # a kind no name should be made of
        console.sealer.seal_item(session, find_case(session, reference), "../../escaped", b"{}")
        session.commit()
    out = tmp_path / "new" / "case"
    (tmp_path / "new").mkdir()
    result = _decrypt(console_app, reference, out, key_passphrase)
    assert result.exit_code == 0, result.output
    files = sorted(out.iterdir())
    assert len(files) == 4 and all(path.parent == out and path.is_file() and not path.is_symlink() for path in files)
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert all(re.fullmatch(r"[0-9]{6,}-[a-z]+(-[a-z]+)*\.(wav|json|txt)|case\.json", path.name) for path in files), files
    assert list(tmp_path.rglob("escaped*")) == []
    owners = {item["kind"]: item["owner"] for item in json.loads((out / "case.json").read_text())["items"]}
    with console.db.session() as session:  # what each seal says it belongs to, authenticated
        assert owners["recording"] == f"recording:{session.scalar(select(Recording.id))}"
    assert owners["contact"] == "case"
