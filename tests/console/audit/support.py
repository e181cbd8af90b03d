"""What the audit tests share: reading the trail back, and a named caller's case with a transcript."""
from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select

from jobs.worker import run_until_idle
from storage.cases import take_owner
from storage.models import AuditAction, AuditEntry, Recording
from tests.support.audio import phone_wav
from tests.support.takes import recorded_take
from transcription.recognizer import Transcript, Word


@dataclass(frozen=True)
class Entry:
    seq: int
    action: AuditAction
    actor_id: int | None
    case_reference: str | None
    target_user_id: int | None
    detail: dict


def trail(console, action: AuditAction | None = None) -> list[Entry]:
    with console.db.session() as session:
        query = select(AuditEntry).order_by(AuditEntry.id)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        return [Entry(e.id, e.action, e.actor_id, e.case_reference, e.target_user_id, json.loads(e.detail))
                for e in session.scalars(query)]


@dataclass(frozen=True)
class CaseWithTake:
    reference: str
    recording_id: int

    @property
    def url(self) -> str:
        return f"/cases/{self.reference}"

    def media(self, what: str) -> str:
        return f"/media/takes/{self.recording_id}/{what}"


def transcript_saying(words: str) -> Transcript:
    spoken = [Word(text, i * 0.5, i * 0.5 + 0.4, 0.9) for i, text in enumerate(words.split())]
    return Transcript(text=words, words=spoken, model_name="test-model", model_version="1", seconds_taken=0.1,
                      audio_seconds=len(spoken) * 0.5)


def named_case_saying(hotline, fake_twilio, console, words: str, contact_number: str = "+447700900123") -> CaseWithTake:
    """A named caller's case whose one take is sealed, with a machine transcript of `words` sealed beside
    it the way the transcription job leaves it."""
    recording_id, _ = recorded_take(hotline, fake_twilio, phone_wav(2.0), contact_number=contact_number)
    run_until_idle(hotline.workshop)
    with console.db.session() as session:
        recording = session.get(Recording, recording_id)
        item = console.sealer.seal_item(session, recording.case, "transcript", transcript_saying(words).to_json(),
                                        owner=take_owner(recording_id))
        recording.transcript_item_id, recording.transcription_status = item.id, "done"
        session.commit()
        return CaseWithTake(recording.case.reference, recording_id)
