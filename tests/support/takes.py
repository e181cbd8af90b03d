"""A take on a report, as the webhooks leave it after Twilio's recording status callback."""
from __future__ import annotations

import secrets

from sqlalchemy import select

from ivr.desk import SqlCallDesk
from ivr.events import RecordingEvent
from storage.db import Database
from storage.models import Case, Recording
from tests.support.audio import phone_wav


def recorded_take(hotline, fake_twilio, wav: bytes, *, status: str = "completed", callbacks: int = 1,
                  contact_number: str | None = None) -> tuple[int, str]:
    """Opens a report (anonymous unless a contact number is given) whose take Twilio holds; returns
    (recording id, RecordingSid)."""
    call_sid = "CA" + secrets.token_hex(16)
    sid, url = fake_twilio.add_recording(wav, call_sid=call_sid)
    with hotline.db.session() as session:
        desk = SqlCallDesk(session, hotline.sealer, hotline.settings.secret_key)
        desk.open_report(call_sid, anonymous=contact_number is None)
        if contact_number is not None:
            desk.save_contact_number(call_sid, contact_number, confirmed=True)
        for _ in range(callbacks):
            desk.recording_status(call_sid, RecordingEvent(sid, url, 5, status))
        session.commit()
        return session.scalar(select(Recording.id).where(Recording.recording_sid == sid)), sid


def watch_twilio_deletes(workshop, database_url: str, column) -> list:
    """Before each delete at Twilio, read `column` of the recording through another connection:
    what it sees is what was committed at that moment."""
    seen: list = []
    real_delete = workshop.twilio.delete_recording

    def delete_and_look(recording_sid: str) -> None:
        other = Database(database_url)
        with other.session() as session:
            seen.append(session.scalar(select(column).where(Recording.recording_sid == recording_sid)))
        other.dispose()
        real_delete(recording_sid)

    workshop.twilio.delete_recording = delete_and_look
    return seen


def stored_case_with_contact(hotline, fake_twilio) -> tuple[str, bytes]:
    """A named caller's case whose one take is fetched and sealed; returns (reference, the WAV)."""
    from jobs.worker import run_until_idle

    wav = phone_wav(1.0)
    recorded_take(hotline, fake_twilio, wav, contact_number="+447700900456")
    run_until_idle(hotline.workshop)
    with hotline.db.session() as session:
        return session.scalar(select(Case.reference)), wav
