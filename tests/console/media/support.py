"""Takes a handler can open: a sealed recording, and (for most) a sealed machine transcript beside it.

The `hotline` fixture has no transcriber, so `recorded_take` + `run_until_idle` leaves the audio sealed
and the transcript pending; `seal_machine_transcript` then seals a machine transcript the way the job would.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select

from jobs.worker import run_until_idle
from storage.cases import take_owner
from storage.models import AuditAction, AuditEntry, Recording
from tests.console.support import csrf_token
from tests.support.audio import phone_wav
from tests.support.takes import recorded_take
from transcription.recognizer import Transcript, Word

# Made-up words with made-up timings; "parked" and "gate" are the machine's unsure ones.
MACHINE_WORDS = [
    Word("he", 0.10, 0.30, 0.97),
    Word("parked", 0.30, 0.70, 0.41),
    Word("by", 0.80, 0.95, 0.93),
    Word("the", 0.95, 1.05, 0.96),
    Word("gate", 1.05, 1.50, 0.52),
]


def machine_transcript(words: list[Word] = MACHINE_WORDS) -> Transcript:
    return Transcript(text=" ".join(word.text for word in words), words=list(words), model_name="test-model",
                      model_version="1", seconds_taken=0.1, audio_seconds=2.0)


@dataclass(frozen=True)
class Take:
    recording_id: int
    reference: str
    wav: bytes  # what the caller said, as Twilio held it (and so as it was sealed)

    @property
    def audio_url(self) -> str:
        return f"/media/takes/{self.recording_id}/audio"

    @property
    def transcript_url(self) -> str:
        return f"/media/takes/{self.recording_id}/transcript"

    @property
    def peaks_url(self) -> str:
        return f"/media/takes/{self.recording_id}/peaks"

    @property
    def corrections_url(self) -> str:
        return f"/media/takes/{self.recording_id}/corrections"

    @property
    def history_url(self) -> str:
        return f"/media/takes/{self.recording_id}/history"


def a_sealed_take(hotline, fake_twilio, wav: bytes | None = None) -> Take:
    wav = wav if wav is not None else phone_wav(2.0)
    recording_id, _ = recorded_take(hotline, fake_twilio, wav)
    run_until_idle(hotline.workshop)
    with hotline.db.session() as session:
        recording = session.get(Recording, recording_id)
        assert recording.audio_item_id is not None, "the job did not seal the take"
        return Take(recording_id, recording.case.reference, wav)


def seal_machine_transcript(console, take: Take, transcript: Transcript | None = None) -> None:
    with console.db.session() as session:
        recording = session.get(Recording, take.recording_id)
        item = console.sealer.seal_item(session, recording.case, "transcript", (transcript or machine_transcript()).to_json(),
                                        owner=take_owner(recording.id))
        recording.transcript_item_id = item.id
        recording.transcription_status = "done"
        session.commit()


def audit_entries(console, action: AuditAction) -> list[dict]:
    with console.db.session() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
        return [{"actor_id": row.actor_id, "case": row.case_reference, "detail": json.loads(row.detail)} for row in rows]


def csrf_of(person, take: Take) -> str:
    """This session's CSRF token, as a page gives it to its scripts (the player in data-csrf-token)."""
    return csrf_token(person.get(take.history_url).get_data(as_text=True))


def posts_correction(person, take: Take, body, *, csrf: str | None = None):
    headers = {"X-CSRFToken": csrf if csrf is not None else csrf_of(person, take)}
    if isinstance(body, (dict, list)):
        return person.client.post(take.corrections_url, json=body, headers=headers)
    return person.client.post(take.corrections_url, data=body, headers={**headers, "Content-Type": "application/json"})
