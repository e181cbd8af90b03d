"""The recording job: fetch from Twilio, seal and store, transcribe, then delete Twilio's copy.

Each stage commits before the next begins and is skipped when already done, so a job that dies at
any point and is run again finishes the work exactly once. Twilio's copy is deleted last: until the
sealed audio and transcript are committed it is the only copy the worker can read (workers hold no
private key, so a job that died before transcribing fetches the audio from Twilio again).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from jobs import queue
from jobs.transcribe import transcribe_take
from jobs.twilio_rest import RecordingGone, TwilioRest, TwilioUnavailable
from settings import Settings
from storage.cases import Sealer
from storage.db import Database
from storage.models import Job, Recording
from transcription.recognizer import Transcriber

log = logging.getLogger("hotline.jobs")


@dataclass
class Workshop:
    """What a job needs, built once per worker process."""

    settings: Settings
    db: Database
    sealer: Sealer
    twilio: TwilioRest
    transcriber: Transcriber | None = None  # None: takes are stored, and wait to be transcribed


class LeaseKeeper:
    """Renews a running job's lease while it works, so only a dead worker's job is taken over."""

    def __init__(self, db: Database, job_id: int, lease: timedelta):
        self.db, self.job_id, self.lease = db, job_id, lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{job_id}", daemon=True)

    def _renew(self) -> None:
        while not self._stop.wait(self.lease.total_seconds() / 3):
            try:
                with self.db.session() as session:
                    queue.renew_lease(session, self.job_id, self.lease)
            except Exception:
                log.warning("could not renew the lease of job %s", self.job_id)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_job(workshop: Workshop, job_id: int | None = None) -> int | None:
    """Claim one due job (or the named one) and run it; returns its id, or None if none was due."""
    lease = timedelta(seconds=workshop.settings.job_lease_seconds)
    with workshop.db.session() as session:
        job = queue.claim(session, job_id, lease=lease)
        if job is None:
            return None
        try:
            with LeaseKeeper(workshop.db, job.id, lease):
                _run_claimed(workshop, session, job)
        except Exception as error:  # every failure is retried later; none may take the worker down
            session.rollback()
            job = session.get(Job, job.id, populate_existing=True)
            reason = _describe(error)
            again = queue.retry_later(
                session, job, reason, workshop.settings.retry_base_seconds, workshop.settings.job_max_attempts
            )
            session.commit()
            log.warning(
                "job %s (%s, recording %s) attempt %s failed: %s; %s",
                job.id, job.kind, job.recording_id, job.attempts, reason,
                "will retry" if again else "giving up",
            )
            return job.id
        job = session.get(Job, job.id, populate_existing=True)
        queue.complete(session, job)
        session.commit()
        return job.id


def _run_claimed(workshop: Workshop, session: Session, job: Job) -> None:
    if job.kind == queue.STORE_RECORDING:
        store_recording(workshop, session, job.recording_id)
    elif job.kind == queue.DISCARD_RECORDING:
        discard_recording(workshop, session, job.recording_id)
    else:
        raise ValueError(f"unknown job kind {job.kind!r}")


def _describe(error: Exception) -> str:
    # Our own exceptions carry safe messages; anything else is named by type only.
    if isinstance(error, (TwilioUnavailable, RecordingGone)):
        return str(error)
    return type(error).__name__


def _recording(session: Session, recording_id: int, lock: bool = False) -> Recording:
    recording = session.get(Recording, recording_id, populate_existing=True, with_for_update=lock)
    if recording is None:
        raise LookupError(f"recording {recording_id} does not exist")
    return recording


def store_recording(workshop: Workshop, session: Session, recording_id: int) -> None:
    recording = _recording(session, recording_id)
    if recording.decision == "discard":
        discard_recording(workshop, session, recording_id)
        return
    sid = recording.recording_sid
    needs_audio = recording.audio_item_id is None or (
        workshop.transcriber is not None and recording.transcription_status == "pending"
    )
    if not recording.deleted_at_twilio and needs_audio:
        session.commit()  # no transaction held open across the download
        audio = workshop.twilio.download_recording(sid)
        recording = _recording(session, recording_id, lock=True)
        if recording.decision == "discard":  # the caller chose to record again while we downloaded
            session.commit()
            discard_recording(workshop, session, recording_id)
            return
        if recording.audio_item_id is None:
            item = workshop.sealer.seal_item(
                session, recording.case, "recording", audio,
                note={"duration_seconds": recording.duration_seconds, "format": "wav"},
            )
            recording.audio_item_id = item.id
            session.commit()
            log.info("recording %s sealed and stored (%d bytes)", recording_id, item.size)
        if workshop.transcriber is not None:
            transcribe_take(
                session, workshop.sealer, workshop.transcriber, recording, audio,
                workshop.settings.transcription_max_attempts,
            )
    _delete_at_twilio(workshop, session, recording_id)


def discard_recording(workshop: Workshop, session: Session, recording_id: int) -> None:
    recording = _recording(session, recording_id, lock=True)
    items = [item for item in (recording.audio_item, recording.transcript_item) if item is not None]
    recording.audio_item_id = recording.transcript_item_id = None
    session.flush()
    for item in items:
        workshop.sealer.destroy_item(session, item)
    session.commit()
    _delete_at_twilio(workshop, session, recording_id)


def _delete_at_twilio(workshop: Workshop, session: Session, recording_id: int) -> None:
    recording = _recording(session, recording_id)
    if recording.deleted_at_twilio:
        return
    session.commit()
    workshop.twilio.delete_recording(recording.recording_sid)
    recording = _recording(session, recording_id)
    recording.deleted_at_twilio = True
    session.commit()
    log.info("recording %s deleted at Twilio", recording_id)
