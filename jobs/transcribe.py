"""The transcription stage of the recording job: the in-memory audio in, a sealed transcript out.

Attempts are counted in the database before each try, so a recording that crashes the worker every
time (or a worker killed mid-way, again and again) still ends: after the last attempt the take is
marked "transcription failed" with the reason, its audio stays sealed, and the job goes on to delete
Twilio's copy. An operator can transcribe it again later (`flask --app app retranscribe`).
"""
from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from storage.cases import Sealer
from storage.models import Recording
from transcription.audio import AudioError
from transcription.recognizer import Transcriber, transcribe_recording

log = logging.getLogger("hotline.jobs")


def transcribe_take(
    session: Session, sealer: Sealer, transcriber: Transcriber, recording: Recording, audio: bytes, max_attempts: int
) -> None:
    if recording.transcription_status != "pending":
        return
    recording.transcription_attempts += 1
    session.commit()
    try:
        transcript = transcribe_recording(transcriber, audio)
    except AudioError as error:
        # The audio itself cannot be decoded: another try would fail the same way.
        _give_up(session, recording, f"the recording could not be decoded: {error}")
        return
    except Exception as error:
        if recording.transcription_attempts >= max_attempts:
            _give_up(session, recording, f"transcription failed {recording.transcription_attempts} times ({type(error).__name__})")
            return
        raise
    item = sealer.seal_item(
        session, recording.case, "transcript", transcript.to_json(),
        note={"model": transcript.model_name, "model_version": transcript.model_version,
              "seconds_taken": round(transcript.seconds_taken, 3), "audio_seconds": round(transcript.audio_seconds, 3),
              "words": len(transcript.words)},
    )
    recording.transcript_item_id = item.id
    recording.transcription_status = "done"
    recording.transcription_error = None
    session.commit()
    log.info("recording %s transcribed: %.1f s of audio in %.1f s", recording.id, transcript.audio_seconds, transcript.seconds_taken)


def _give_up(session: Session, recording: Recording, reason: str) -> None:
    recording.transcription_status = "failed"
    recording.transcription_error = reason
    session.commit()
    log.warning("recording %s: %s", recording.id, reason)
