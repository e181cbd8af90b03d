"""The transcription stage of the recording job: the in-memory audio in, a sealed transcript out.

Attempts are counted in the database before each try, so a recording that crashes the worker every
time (or a worker killed mid-way, again and again) still ends: after the last attempt the take is
marked "transcription failed" with the reason, its audio stays sealed, and the job goes on to delete
Twilio's copy. An operator can transcribe it again later (`flask --app console retranscribe`).

Nothing is attached to a take the caller has deleted meanwhile (jobs/takes.py), and a worker's commits
go through its job's claim, so one that lost its lease commits nothing.
"""
from __future__ import annotations

import logging
from typing import Callable

from sqlalchemy import delete
from sqlalchemy.orm import Session

from jobs.takes import attach_sealed, drop_unattached, set_if_kept
from storage.blobs import DatabaseBlobStore
from storage.cases import Sealer, take_owner
from storage.models import Recording, SealedItem, TranscriptionStatus
from transcription.audio import AudioError
from transcription.recognizer import Transcript, Transcriber, transcribe_recording

log = logging.getLogger("hotline.jobs")


def transcribe_take(
    session: Session, sealer: Sealer, transcriber: Transcriber, recording: Recording, audio: bytes, max_attempts: int,
    commit: Callable[[], None] | None = None,
) -> None:
    commit = commit or session.commit
    if recording.transcription_status != TranscriptionStatus.PENDING:
        return
    recording.transcription_attempts += 1
    commit()
    try:
        transcript = transcribe_recording(transcriber, audio)
    except AudioError as error:
        # The audio itself cannot be decoded: another try would fail the same way.
        _give_up(session, recording, f"the recording could not be decoded: {error}", commit)
        return
    except Exception as error:
        if recording.transcription_attempts >= max_attempts:
            _give_up(session, recording, f"transcription failed {recording.transcription_attempts} times ({type(error).__name__})", commit)
            return
        raise
    item = seal_transcript(session, sealer, recording, transcript)
    kept = attach_sealed(
        session, sealer, item, recording.id, commit, expect={"transcript_item_id": None},
        transcript_item_id=item.id, transcription_status=TranscriptionStatus.DONE, transcription_error=None,
    )
    session.expire(recording)
    if kept:
        log.info("recording %s transcribed: %.1f s of audio in %.1f s", recording.id, transcript.audio_seconds, transcript.seconds_taken)
    else:
        log.info("recording %s: transcript not kept (the take was deleted, or already transcribed, meanwhile)", recording.id)


def seal_transcript(session: Session, sealer: Sealer, recording: Recording, transcript: Transcript) -> SealedItem:
    """The take's machine transcript, sealed and bound to the take (storage.cases.take_owner)."""
    return sealer.seal_item(
        session, recording.case, "transcript", transcript.to_json(), owner=take_owner(recording.id),
        note={"model": transcript.model_name, "model_version": transcript.model_version,
              "seconds_taken": round(transcript.seconds_taken, 3), "audio_seconds": round(transcript.audio_seconds, 3),
              "words": len(transcript.words)},
    )


def _give_up(session: Session, recording: Recording, reason: str, commit: Callable[[], None]) -> None:
    if set_if_kept(session, recording.id, expect={"transcription_status": TranscriptionStatus.PENDING},
                   transcription_status=TranscriptionStatus.FAILED, transcription_error=reason):
        commit()
        log.warning("recording %s: %s", recording.id, reason)
    else:
        session.rollback()
    session.expire(recording)


def replace_transcript(session: Session, sealer: Sealer, transcriber: Transcriber, recording: Recording, audio: bytes) -> str | None:
    """Transcribe a stored take again (the console's `retranscribe`). The old transcript stays attached
    until the new one is sealed; one transaction then attaches the new one and removes the old one's
    row, so the take always has one or the other; the old sealed bytes go last. Returns None, or why
    nothing was replaced (a take that had no transcript is then marked failed with the reason)."""
    old = recording.transcript_item
    old_id, old_key = (old.id, old.blob_key) if old is not None else (None, None)
    try:
        transcript = transcribe_recording(transcriber, audio)
    except AudioError as error:
        reason = f"the recording could not be decoded: {error}"
    except Exception as error:
        reason = f"transcription failed ({type(error).__name__})"
    else:
        reason = None
    if reason is not None:
        if old_id is None and set_if_kept(session, recording.id, expect={"transcript_item_id": None},
                                          transcription_status=TranscriptionStatus.FAILED, transcription_error=reason):
            session.commit()
        session.rollback()
        session.expire(recording)
        return reason

    item = seal_transcript(session, sealer, recording, transcript)
    in_transaction = isinstance(sealer.blobs, DatabaseBlobStore)  # a folder store deletes files at once
    try:
        swapped = set_if_kept(
            session, recording.id, expect={"transcript_item_id": old_id},
            transcript_item_id=item.id, transcription_status=TranscriptionStatus.DONE, transcription_error=None,
        )
        if swapped and old_id is not None:
            session.execute(delete(SealedItem).where(SealedItem.id == old_id).execution_options(synchronize_session=False))
            if in_transaction:
                sealer.blobs.delete(session, old_key)
        if swapped:
            session.commit()
    except BaseException:
        drop_unattached(session, sealer, item.blob_key)
        raise
    if not swapped:
        drop_unattached(session, sealer, item.blob_key)
        session.expire(recording)
        return "the take changed meanwhile (deleted, or transcribed again elsewhere); nothing was replaced"
    if old_key is not None and not in_transaction:
        sealer.blobs.delete(session, old_key)  # nothing points at it any more
    session.expire_all()
    return None
