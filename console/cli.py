"""The console side's operator commands: `flask --app console <command>`. Those that open sealed items
need the operator's hotline.key and its passphrase; each such use is audited."""
from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import click
from flask import Flask, current_app
from sqlalchemy import func, select

from storage.crypto import KeyFileError, SealError
from storage.migrate import SchemaMismatch, check_stores_at_start, upgrade_all
from storage.models import AuditAction, Role


def _console(*, check: bool = True):
    """This command's console; unless check=False (`db upgrade`), only once the database and the key store
    are found at this code's heads, as the line's commands do (else the command stops with what to run)."""
    console = current_app.extensions["console"]
    if check and not current_app.config.get(_SCHEMA_CHECKED):
        try:
            check_stores_at_start(console.settings.database_url, console.settings.key_store_url)
        except SchemaMismatch as error:
            raise click.ClickException(str(error)) from None
        current_app.config[_SCHEMA_CHECKED] = True
    return console


_SCHEMA_CHECKED = "HOTLINE_SCHEMA_CHECKED"


def _private_key(key_path: Path | None):
    from console.keys import load_private_key

    key_path = key_path or current_app.config["CONSOLE_SETTINGS"].private_key_path
    passphrase = os.environ.get("HOTLINE_KEY_PASSPHRASE") or click.prompt("Private key passphrase", hide_input=True)
    try:
        return load_private_key(key_path, passphrase)
    except KeyFileError as error:
        raise click.ClickException(str(error)) from None


_KEY_OPTION = click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path),
                           help="The wrapped private key (default: HOTLINE_PRIVATE_KEY_FILE, or hotline.key beside the public key).")


def register_commands(app: Flask) -> None:
    @app.cli.group("db")
    def db_group():
        """The database schema."""

    @db_group.command("upgrade")
    def db_upgrade():
        """Apply every migration not yet applied: the database's, then the key store's (HOTLINE_KEY_STORE_URL)."""
        settings = _console(check=False).settings
        try:
            upgrade_all(settings.database_url, settings.key_store_url, say=click.echo)
        except SchemaMismatch as error:  # a key store half made: nothing to upgrade safely
            raise click.ClickException(str(error)) from None

    @app.cli.command("create-admin")
    @click.argument("username")
    @click.option("--name", "display_name", required=True, help="The person's name, as other handlers see it.")
    @_KEY_OPTION
    def create_admin(username: str, display_name: str, key_path: Path | None):
        """Create an admin account and print its one-time enrolment link (needs the private key)."""
        from console.accounts.services import AccountError, invite
        from console.audit.services import record

        console = _console()
        private_key = _private_key(key_path)
        with console.db.session() as session:
            try:
                invitation = invite(session, private_key, username, display_name, Role.ADMIN, None,
                                    timedelta(hours=console.settings.invite_hours))
            except AccountError as error:
                raise click.ClickException(str(error)) from None
            record(session, AuditAction.ACCOUNT_CREATED, actor_label="operator",
                   target_user_id=invitation.user.id, detail={"role": Role.ADMIN.value, "by": "create-admin"})
            session.commit()
            click.echo(f"admin {invitation.user.username} created. Open this link once, within "
                       f"{console.settings.invite_hours} hours, to choose a password and set up a second factor:")
            click.echo(f"  {console.settings.public_url}/enrol/{invitation.token}")

    @app.cli.group("audit")
    def audit_group():
        """The audit trail."""

    @audit_group.command("verify")
    @click.option("--head", "expected_head", default=None,
                  help="SEQ:HASH from an 'audit head' line of the console's log: it must still be in the chain.")
    def audit_verify(expected_head: str | None):
        """Check the whole hash chain; name the first broken link."""
        from console.audit.services import verify_chain

        expected = None
        if expected_head:
            try:
                seq, digest = expected_head.split(":", 1)
                expected = (int(seq), digest.strip().lower())
            except ValueError:
                raise click.UsageError("--head takes SEQ:HASH, as logged by the console") from None
        with _console().db.session() as session:
            check = verify_chain(session, expected)
        if check.ok:
            click.echo(f"audit chain intact: {check.entries} entries, head {check.head_seq}:{check.head_hash}")
            return
        raise click.ClickException(f"audit chain broken at entry {check.first_broken}: {check.problem}")

    @app.cli.command("unlock")
    @click.argument("reference")
    def unlock(reference: str):
        """Let a caller in again after 10 failed PINs locked their reference (audited; no key needed)."""
        from console.audit.services import record
        from storage.cases import find_case, unlock_reference

        with _console().db.session() as session:
            case = find_case(session, reference)
            if case is None:
                raise click.ClickException("no case with that reference")
            failures = unlock_reference(session, case.reference)
            if not failures:
                raise click.ClickException(f"case {case.reference} has no failed PIN attempts: nothing to unlock")
            record(session, AuditAction.REFERENCE_UNLOCKED, actor_label="operator", case_reference=case.reference,
                   detail={"failures": failures, "by": "unlock"})
            session.commit()
        click.echo(f"case {reference}: {failures} failed PIN attempts cleared; call-backs are unlocked")

    @app.cli.command("decrypt")
    @click.argument("reference")
    @_KEY_OPTION
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
                  help="A new folder to write the case's decrypted items into (it must not exist yet).")
    def decrypt(reference: str, key_path: Path | None, out_dir: Path):
        """Decrypt everything kept for one case into a new folder (operators only; needs the private key).
        Each item's owner (what its seal says it belongs to, e.g. recording:17) is in case.json."""
        from console.audit.services import record
        from console.export import ExportFolder, ExportRefused, item_file_name
        from console.keys import open_item_with_owner
        from storage.cases import find_case

        if os.path.lexists(out_dir):
            raise click.ClickException(f"{out_dir} already exists: give a folder that does not exist yet")
        console = _console()
        private_key = _private_key(key_path)
        with console.db.session() as session:
            case = find_case(session, reference)
            if case is None:
                raise click.ClickException("no case with that reference")
            summary = {"reference": case.reference, "anonymous": case.anonymous, "category": case.category,
                       "created_at": case.created_at.isoformat(), "items": []}
            opened = []
            for item in case.items:  # all of it opened before anything is written
                try:
                    data, owner = open_item_with_owner(session, private_key, console.blobs, item, console.periods)
                except SealError as error:
                    raise click.ClickException(f"item {item.id} ({item.kind}): {error}") from None
                name = item_file_name(item.id, item.kind)
                opened.append((name, data))
                summary["items"].append({"file": name, "kind": item.kind, "owner": owner,
                                         "created_at": item.created_at.isoformat()})
            try:
                with ExportFolder(out_dir) as folder:
                    for name, data in opened:
                        folder.write(name, data)
                    folder.write("case.json", json.dumps(summary, indent=2).encode())
            except (ExportRefused, OSError) as error:
                raise click.ClickException(str(error)) from None
            record(session, AuditAction.CASE_DECRYPTED, actor_label="operator", case_reference=case.reference,
                   detail={"items": len(summary["items"])})
            session.commit()
        click.echo(f"wrote {len(summary['items'])} items for case {reference} to {out_dir}")

    @app.cli.command("retranscribe")
    @click.argument("references", nargs=-1)
    @click.option("--failed", is_flag=True, help="Every take whose transcription failed.")
    @_KEY_OPTION
    def retranscribe(references: tuple[str, ...], failed: bool, key_path: Path | None):
        """Transcribe stored takes again (the audio is opened with the private key). A take's old
        transcript is kept until the new one is sealed and committed in its place."""
        from console.keys import open_item
        from console.audit.services import record
        from jobs.transcribe import replace_transcript
        from storage.cases import take_owner
        from storage.models import Case, Recording, TranscriptVersion
        from transcription.model import ModelError, resolve_model_path
        from transcription.recognizer import Transcriber

        console = _console()
        if not references and not failed:
            raise click.UsageError("name case references, or use --failed")
        private_key = _private_key(key_path)
        try:
            transcriber = Transcriber(resolve_model_path(console.settings.vosk_model_path, console.settings.data_dir))
        except ModelError as error:
            raise click.ClickException(str(error)) from None
        with console.db.session() as session:
            query = select(Recording).where(Recording.audio_item_id.is_not(None), Recording.decision == "keep")
            if references:
                query = query.join(Case).where(Case.reference.in_(references))
            if failed:
                query = query.where(Recording.transcription_status == "failed")
            for recording in session.scalars(query).all():
                reference, take = recording.case.reference, recording.id
                if session.scalar(select(TranscriptVersion.id).where(TranscriptVersion.recording_id == take).limit(1)):
                    # Handlers' corrections are built on the machine transcript's words and timings;
                    # replacing it under them would leave versions that no longer match the audio.
                    click.echo(f"case {reference} take {take}: skipped (handlers have corrected its transcript)")
                    continue
                had_transcript = recording.transcript_item_id is not None
                audio = open_item(session, private_key, console.blobs, recording.audio_item, take_owner(take),
                                  console.periods)
                record(session, AuditAction.AUDIO_PLAYED, actor_label="operator", case_reference=reference,
                       detail={"take": take, "by": "retranscribe"})
                session.commit()
                problem = replace_transcript(session, console.sealer, transcriber, recording, audio)
                recording = session.get(Recording, take, populate_existing=True)
                if problem is None:
                    click.echo(f"case {reference} take {take}: {recording.transcription_status}")
                elif had_transcript:
                    click.echo(f"case {reference} take {take}: {recording.transcription_status} "
                               f"(transcribing again: {problem}; the earlier transcript is kept)")
                else:
                    click.echo(f"case {reference} take {take}: {recording.transcription_status} ({problem})")

    @app.cli.group("keys")
    def keys_group():
        """The hotline key and the period keys (storage/keystore.py, console/rotation.py)."""

    @keys_group.command("status")
    def keys_status():
        """Each period key, the hotline key it is sealed to and the cases on it; items not yet under a period
        key; accounts per key."""
        from collections import Counter

        from console.rotation import _copy_key
        from storage.models import SealedItem, User
        from storage.retention import cases_by_period

        console = _console()
        if console.periods is None:
            raise click.ClickException("no key store is configured (HOTLINE_KEY_STORE_URL)")
        with console.db.session() as session:
            on_period = {period: len(ids) for period, ids in cases_by_period(session).items()}
            legacy = session.scalar(select(func.count(SealedItem.id)).where(SealedItem.key_period.is_(None)))
            copies = Counter(_copy_key(user.wrapped_key) or "none"
                             for user in session.scalars(select(User).where(User.disabled_at.is_(None))))
        kept = set()
        for row in console.periods.periods():
            kept.add(row.period)
            click.echo(f"period {row.period}: sealed to hotline key {row.hotline_key}; "
                       f"cases on it: {on_period.get(row.period, 0)}")
        for period in sorted(set(on_period) - kept):
            click.echo(f"period {period}: no key in the key store; cases on it: {on_period[period]} "
                       "(their items under it do not open)")
        click.echo(f"items sealed straight to a hotline key (v1, v2): {legacy}")
        for fingerprint, count in sorted(copies.items()):
            click.echo(f"accounts holding hotline key {fingerprint}: {count}")

    @keys_group.command("rotate")
    @_KEY_OPTION
    @click.option("--new-dir", "new_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
                  help="A new folder for the new hotline.pub and hotline.key (it must not exist yet).")
    def keys_rotate(key_path: Path | None, new_dir: Path):
        """Make a new hotline key pair; re-wrap every period key to it and seal older items under their
        period keys; end every console session. Accounts take up the new key at their next sign-in."""
        from console.keys import load_private_key
        from console.rotation import RotationError, rotate
        from storage.crypto import write_key_pair

        console = _console()
        if console.periods is None:
            raise click.ClickException("no key store is configured (HOTLINE_KEY_STORE_URL)")
        if os.path.lexists(new_dir):
            raise click.ClickException(f"{new_dir} already exists: give a folder that does not exist yet")
        old_private = _private_key(key_path)
        passphrase = click.prompt("Passphrase for the new private key", hide_input=True, confirmation_prompt=True)
        try:
            _, new_key_path = write_key_pair(new_dir, passphrase)
            new_private = load_private_key(new_key_path, passphrase)
        except KeyFileError as error:
            raise click.ClickException(str(error)) from None
        with console.db.session() as session:
            try:
                done = rotate(session, console.periods, console.sealer, current_app.extensions["console_sessions"],
                              old_private, new_private)
            except RotationError as error:
                raise click.ClickException(str(error)) from None
        click.echo(f"hotline key {done.old_key} -> {done.new_key}: {done.period_keys} period keys re-wrapped, "
                   f"{done.items_resealed} items sealed under period keys, {done.sessions_ended} sessions ended")
        click.echo(f"next: put {new_dir / 'hotline.pub'} on every machine (HOTLINE_PUBLIC_KEY_FILE) and keep "
                   f"{new_dir / 'hotline.key'} offline; accounts take up the new key as they sign in "
                   f"(keys status); then: flask --app console keys retire {done.old_key}")

    @keys_group.command("reseal")
    @click.argument("period")
    @_KEY_OPTION
    def keys_reseal(period: str, key_path: Path | None):
        """Seal a past month's remaining cases again under this month's key, then destroy the month's key
        (at once, or at the first purge once the month ended 7 days ago). Safe to run again."""
        from console.reseal import ResealRefused, ResealStopped, reseal_period, target_for

        console = _console()
        try:
            target_for(console.periods, period)  # refused before the passphrase is asked for
        except ResealRefused as refusal:
            raise click.ClickException(str(refusal)) from None
        private_key = _private_key(key_path)
        with console.db.session() as session:
            try:
                done = reseal_period(session, console.periods, console.sealer, private_key, period)
            except (ResealRefused, ResealStopped) as refusal:
                raise click.ClickException(str(refusal)) from None
        click.echo(f"period {done.period}: {done.cases} cases and {done.items} items sealed again under "
                   f"{done.target}")
        if done.key_destroyed:
            click.echo(f"key of period {done.period} destroyed: what was sealed under it opens no more, in any "
                       "backup of the database (and, once they expire, of the key store)")
        else:
            click.echo(f"key of period {done.period} kept: {done.key_kept}")

    @keys_group.command("retire")
    @click.argument("fingerprint")
    def keys_retire(fingerprint: str):
        """After a rotation: the old key opens nothing any more. Accounts still on it are disabled."""
        from console.rotation import RotationError, retire

        console = _console()
        with console.db.session() as session:
            try:
                done = retire(session, console.periods, current_app.extensions["console_sessions"], fingerprint)
            except RotationError as error:
                raise click.ClickException(str(error)) from None
            session.commit()
        click.echo(f"hotline key {done.old_key} retired; accounts disabled (an admin enables them again): "
                   f"{', '.join(done.accounts_disabled) or 'none'}. Destroy the old hotline.key and its copies.")
