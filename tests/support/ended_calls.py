"""A call that has ended, as the line leaves it for the call-record job: Twilio holds its record (and
its recordings), the desk has seen it start, record and end."""
from __future__ import annotations

from ivr.desk import SqlCallDesk
from ivr.events import RecordingEvent
from tests.support.audio import phone_wav


def ended_call(hotline, fake_twilio, *, anonymous: bool = True, takes: int = 1, report: bool = True) -> tuple[str, list[str]]:
    """A call Twilio has a record of, with `takes` recordings, that has ended; returns (CallSid, RecordingSids)."""
    call_sid = fake_twilio.add_call()
    sids = []
    with hotline.db.session() as session:
        desk = SqlCallDesk(session, hotline.sealer, hotline.settings.secret_key)
        desk.start_call(call_sid)
        if report:
            desk.open_report(call_sid, anonymous=anonymous)
            if not anonymous:
                desk.save_contact_number(call_sid, "+447700900456", confirmed=True)
        for _ in range(takes):
            sid, url = fake_twilio.add_recording(phone_wav(0.5), call_sid=call_sid)
            desk.recording_status(call_sid, RecordingEvent(sid, url, 1, "completed"))
            sids.append(sid)
        fake_twilio.end_call(call_sid)
        desk.call_ended(call_sid, "completed")
        session.commit()
    return call_sid, sids
