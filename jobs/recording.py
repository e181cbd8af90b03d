"""The recording job: fetch from Twilio, seal and store, transcribe, then delete Twilio's copy.

Each stage commits before the next begins and is skipped when already done, so a job that dies at
any point and is run again finishes the work exactly once. Twilio's copy is deleted last: until the
sealed audio and transcript are committed it is the only copy the worker can read (workers hold no
private key, so a job that died before transcribing fetches the audio from Twilio again). The take
marked deleted at Twilio is committed with the job marked done, in one transaction: a worker that dies
between Twilio's delete and that commit leaves the job to run again, and Twilio then answers that the
recording is gone (404), which is what was wanted.

Every commit goes through the job's claim (jobs/queue.py): a worker that lost its lease (taken over
after a long pause) stops at its next commit with nothing committed. Before each call to Twilio (the
download, the delete) the claim checks that the job is still this worker's and ends the transaction,
writing nothing while the lease has time left: on SQLite each write transaction of the worker makes
the webhooks wait for the one write lock. A take stored without transcription costs three: the claim,
the sealed audio attached, and the delete at Twilio noted with the job done.

A take's jobs run one at a time, and whatever is attached to a take is attached only while the caller
still keeps it (jobs/takes.py), so a take deleted mid-transcription leaves no transcript behind.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from sqlalchemy.orm import Session

from jobs import calls, queue
from jobs.takes import DISCARD, KEEP, attach_sealed
from jobs.transcribe import transcribe_take
from jobs.twilio_rest import RecordingGone, TwilioRest, TwilioUnavailable
from settings import Settings
from storage.cases import Sealer
from storage.db import Database
from storage.cases import take_owner
from storage.models import Job, Recording, TranscriptionStatus
from transcription.recognizer import Transcriber

log = logging.getLogger("hotline.jobs")
Commit = Callable[[], None]


@dataclass
class Workshop:
    """What a job needs, built once per worker process."""

    settings: Settings
    db: Database
    sealer: Sealer
    twilio: TwilioRest
    transcriber: Transcriber | None = None  # None: takes are stored, and wait to be transcribed

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.job_lease_seconds)


class LeaseKeeper:
    """Renews a running job's lease every third of it while the job works, so only a dead (or stalled)
    worker's job is taken over. Stops renewing once the job is no longer this worker's."""

    def __init__(self, db: Database, claim: queue.Claim):
        self.db, self.claim = db, claim
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{claim.job_id}", daemon=True)

    def _renew(self) -> None:
        while not self._stop.wait(self.claim.lease.total_seconds() / 3):
            try:
                with self.db.session() as session:
                    if not queue.renew_lease(session, self.claim.job_id, self.claim.owner, self.claim.lease):
                        if self.claim.finished:  # done (or lost at the very end, which run_job reports)
                            return
                        self.lost = True
                        log.warning("job %s: lease lost (taken over or run out); this worker will commit nothing more of it",
                                    self.claim.job_id)
                        return
            except Exception as error:
                log.warning("could not renew the lease of job %s: %s", self.claim.job_id, type(error).__name__)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_job(workshop: Workshop, job_id: int | None = None) -> int | None:
    """Claim one due job (or the named one) and run it; returns its id, or None if none was due."""
    lease = workshop.lease
    with workshop.db.session() as session:
        job = queue.claim(session, job_id, lease=lease)
        if job is None:
            return None
        claim = queue.Claim(job.id, job.owner, lease)
        kind, recording_id, call_id = job.kind, job.recording_id, job.call_id
        subject = f"recording {recording_id}" if call_id is None else f"call {call_id}"  # our ids, never Twilio's
        precision = workshop.settings.anonymous_time
        try:
            with LeaseKeeper(workshop.db, claim):
                _run_claimed(workshop, session, kind, recording_id if call_id is None else call_id, claim, precision)
        except queue.LeaseLost:
            session.rollback()
            log.warning("job %s (%s, %s) lost its lease (taken over, or run out while this worker "
                        "paused); stopped without committing", job.id, kind, subject)
            return job.id
        except Exception as error:  # every failure is retried later; none may take the worker down
            session.rollback()
            reason = _describe(error)
            if kind == queue.DELETE_CALL:  # Twilio may take 14 days to let a call's record go
                again = queue.retry_later(session, job.id, claim.owner, reason, calls.RETRY_BASE_SECONDS, None,
                                          give_up_after=calls.PATIENCE, max_backoff=calls.MAX_BACKOFF, precision=precision)
            else:
                again = queue.retry_later(session, job.id, claim.owner, reason, workshop.settings.retry_base_seconds,
                                          workshop.settings.job_max_attempts, precision=precision)
            session.commit()
            job = session.get(Job, job.id, populate_existing=True)
            if again is None:
                log.warning("job %s (%s, %s) failed (%s) after another worker took it over",
                            job.id, kind, subject, reason)
            elif again:
                log.warning("job %s (%s, %s) attempt %s failed: %s; will retry",
                            job.id, kind, subject, job.attempts, reason)
            else:
                log.warning("ALERT: job %s (%s, %s) gave up after %s attempts: %s; "
                            "it waits for an operator: flask --app app jobs retry",
                            job.id, kind, subject, job.attempts, reason)
            return job.id
        return job.id


def _run_claimed(workshop: Workshop, session: Session, kind: str, subject_id: int, claim: queue.Claim,
                 precision: str) -> None:
    # Every commit of the job's work is the holder's, and its last one marks the job done with it.
    commit = lambda: claim.commit(session)  # noqa: E731
    check = lambda: claim.check(session)  # noqa: E731
    finish = lambda: claim.finish(session, precision)  # noqa: E731
    if kind == queue.STORE_RECORDING:
        store_recording(workshop, session, subject_id, commit, check=check, finish=finish)
    elif kind == queue.DISCARD_RECORDING:
        discard_recording(workshop, session, subject_id, commit, check=check, finish=finish)
    elif kind == queue.DELETE_CALL:
        calls.delete_call_record(workshop, session, subject_id, commit, check=check, finish=finish)
    else:
        raise ValueError(f"unknown job kind {kind!r}")
    if not claim.finished:  # the last stage was done already (deleted at Twilio by an earlier run)
        finish()


def _describe(error: Exception) -> str:
    # Our own exceptions carry safe messages (no Twilio ids: jobs/twilio_rest.py); anything else is named by type only.
    if isinstance(error, (TwilioUnavailable, RecordingGone, calls.TakesStillAtTwilio)):
        return str(error)
    return type(error).__name__


def _recording(session: Session, recording_id: int, lock: bool = False) -> Recording:
    recording = session.get(Recording, recording_id, populate_existing=True, with_for_update=lock)
    if recording is None:
        raise LookupError(f"recording {recording_id} does not exist")
    return recording


def store_recording(workshop: Workshop, session: Session, recording_id: int, commit: Commit | None = None, *,
                    check: Commit | None = None, finish: Commit | None = None) -> None:
    """commit: each stage's work; check: before a call to Twilio, ends the transaction; finish: the
    job's last work. run_job's go through the job's claim; each not given is `commit`, and that the
    session's own commit."""
    commit = commit or session.commit
    check, finish = check or commit, finish or commit
    recording = _recording(session, recording_id)
    if recording.decision == DISCARD:
        discard_recording(workshop, session, recording_id, commit, check=check, finish=finish)
        return
    sid = recording.recording_sid
    needs_audio = recording.audio_item_id is None or (
        workshop.transcriber is not None and recording.transcription_status == TranscriptionStatus.PENDING
    )
    if not recording.deleted_at_twilio and needs_audio:
        check()  # no transaction held open across the download
        audio = workshop.twilio.download_recording(sid)
        recording = _recording(session, recording_id)
        if recording.audio_item_id is None and recording.decision == KEEP:
            item = workshop.sealer.seal_item(
                session, recording.case, "recording", audio,
                note={"duration_seconds": recording.duration_seconds, "format": "wav"}, owner=take_owner(recording_id),
            )
            size = item.size
            if attach_sealed(session, workshop.sealer, item, recording_id, commit,
                             expect={"audio_item_id": None}, audio_item_id=item.id):
                log.info("recording %s sealed and stored (%d bytes)", recording_id, size)
            recording = _recording(session, recording_id)
        if recording.decision == DISCARD:  # the caller chose to record again while we downloaded
            session.rollback()
            discard_recording(workshop, session, recording_id, commit, check=check, finish=finish)
            return
        if workshop.transcriber is not None:
            transcribe_take(
                session, workshop.sealer, workshop.transcriber, recording, audio,
                workshop.settings.transcription_max_attempts, commit,
            )
    if _recording(session, recording_id).decision == DISCARD:  # ... or while we transcribed
        session.rollback()
        discard_recording(workshop, session, recording_id, commit, check=check, finish=finish)
        return
    _delete_at_twilio(workshop, session, recording_id, check, finish)


def discard_recording(workshop: Workshop, session: Session, recording_id: int, commit: Commit | None = None, *,
                      check: Commit | None = None, finish: Commit | None = None) -> None:
    """commit, check, finish: as store_recording's."""
    commit = commit or session.commit
    check, finish = check or commit, finish or commit
    recording = _recording(session, recording_id, lock=True)
    items = [item for item in (recording.audio_item, recording.transcript_item) if item is not None]
    recording.audio_item_id = recording.transcript_item_id = None
    session.flush()
    for item in items:
        workshop.sealer.destroy_item(session, item)
    commit()
    _delete_at_twilio(workshop, session, recording_id, check, finish)


def _delete_at_twilio(workshop: Workshop, session: Session, recording_id: int, check: Commit, finish: Commit) -> None:
    recording = _recording(session, recording_id)
    if recording.deleted_at_twilio:
        return
    sid = recording.recording_sid
    check()  # still this worker's job before anything is done at Twilio
    workshop.twilio.delete_recording(sid)
    recording = _recording(session, recording_id)
    recording.deleted_at_twilio = True
    calls.take_deleted(session, recording.call_id)  # the call's record may go now
    # With the job marked done: a worker that dies first leaves the job to delete again (404: done).
    finish()
    log.info("recording %s deleted at Twilio", recording_id)
