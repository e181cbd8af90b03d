"""Cases as retention finds them: worked, settled some days ago, with rows and sealed items of every kind."""
from __future__ import annotations

from datetime import datetime, timedelta

from storage.cases import event_owner, open_case, take_owner
from storage.models import Call, CaseEvent, CaseEventKind, CaseStatus, Job, JobKind, JobState, Recording, ReferenceLock, utcnow


def a_worked_case(hotline, opened_at: datetime, status: CaseStatus, settled_days_ago: float,
                  closed_from: CaseStatus | None = None) -> str:
    """A case opened at opened_at with a take (audio sealed, its job done, its call), a handler's note and
    failed PINs on its reference, settled into `status` that many days ago. Returns its reference."""
    with hotline.db.session() as session:
        case = open_case(session, anonymous=False)
        case.created_at = opened_at
        session.flush()
        call = Call(call_sid=None, case_id=case.id, deleted_at_twilio=True, started_at=opened_at)
        session.add(call)
        session.flush()
        take = Recording(case_id=case.id, call_id=call.id, position=1, recording_sid=None, duration_seconds=5)
        session.add(take)
        session.flush()
        audio = hotline.sealer.seal_item(session, case, "recording", b"the caller's words", owner=take_owner(take.id))
        take.audio_item_id = audio.id
        session.add(Job(kind=JobKind.STORE_RECORDING, recording_id=take.id, state=JobState.DONE))
        note = CaseEvent(case_id=case.id, kind=CaseEventKind.NOTE)
        session.add(note)
        session.flush()
        note.item_id = hotline.sealer.seal_item(session, case, "note", b"a handler's note", owner=event_owner(note.id)).id
        session.add(ReferenceLock(reference=case.reference, failures=2))
        settled_at = utcnow() - timedelta(days=settled_days_ago)
        if closed_from is not None:
            session.add(CaseEvent(case_id=case.id, kind=CaseEventKind.STATUS, old_value=CaseStatus.IN_REVIEW.value,
                                  new_value=closed_from.value, created_at=settled_at - timedelta(days=1)))
        session.add(CaseEvent(case_id=case.id, kind=CaseEventKind.STATUS,
                              old_value=(closed_from or CaseStatus.IN_REVIEW).value, new_value=status.value,
                              created_at=settled_at))
        case.status = status
        session.commit()
        return case.reference
