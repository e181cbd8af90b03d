"""The call flow's memory, kept in the database. One desk per webhook request; the view commits.

A report's ordinary path (a new call, the anonymity choice, the category, a take, its status callback,
the read-back) is every call's, so it is written in plain SQL statements built once (`_statements`) on
the session's connection: the ORM's flush costs several times the statement itself, and a webhook is
answered while the caller waits. Those statements time an anonymous call's rows as the session's flush
hook would (storage/anonymity.py `stamp`). The rarer paths (a contact number, a call-back's reference
and PIN, questions, a take thrown away) use the ORM objects; a desk that has used them reads its call
again rather than trust what it read before.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from ivr.events import CallStatus, RecordingEvent, RecordingStatus
from ivr.flow import AskedQuestion, UnlockOutcome
from ivr.question_voice import audio_path
from jobs import calls as call_records
from jobs.queue import DELETE_CALL, DISCARD_RECORDING, STORE_RECORDING, bring_forward, enqueue
from jobs.takes import position_after_last
from storage import questions
from storage.anonymity import coarse, stamp
from storage.cases import OpenedCase, Sealer, confirm_contact, open_case_row, seal_contact_number, unlock_case
from storage.models import Call, Case, CaseView, JobState, Recording, TakeDecision, TwilioRecordingStatus, utcnow
from storage.references import pin_for

# A take whose status callback never came is fetched anyway, a little after the call ends.
LATE_FETCH_DELAY = timedelta(seconds=60)


@dataclass(frozen=True)
class CallRow:
    """What the ordinary path needs of the call and its case, read in one statement."""

    id: int
    case_id: int | None = None
    purpose: str | None = None
    anonymous: bool = True  # a call is anonymous until the caller says otherwise (storage/anonymity.py)
    reference: str | None = None
    pin_length: int | None = None
    takes: int = 0  # the call's takes so far, thrown-away ones included (the flow caps them)


@dataclass(frozen=True)
class TakeRow:
    id: int
    recording_url: str | None
    duration_seconds: int | None
    decision: str
    twilio_status: str


@functools.cache
def _statements():
    calls, cases, takes = Call.__table__, Case.__table__, Recording.__table__
    # Each statement is a round trip to PostgreSQL, which on a loaded machine waits for a core: what a
    # webhook asks of the call (its case, its takes) comes in one, and a take's place in its case is
    # found inside its INSERT.
    takes_of_call = select(func.count()).select_from(takes).where(takes.c.call_id == calls.c.id).scalar_subquery()
    # (Its own name for the case's id: the INSERT's case_id parameter is the column's.)
    place_in_case = position_after_last(bindparam("position_in_case")).scalar_subquery()
    return {
        "call": select(calls.c.id, calls.c.case_id, calls.c.purpose, cases.c.anonymous, cases.c.reference,
                       cases.c.pin_length, takes_of_call)
        .select_from(calls.outerjoin(cases, cases.c.id == calls.c.case_id))
        .where(calls.c.call_sid == bindparam("call_sid")),
        "new call": insert(calls),
        "call opened a report": update(calls).where(calls.c.id == bindparam("call_id"))
        .values(purpose=bindparam("purpose"), case_id=bindparam("case_id")),
        "category": update(cases).where(cases.c.id == bindparam("case_id"))
        .values(category=bindparam("category"), updated_at=bindparam("updated_at")),
        "take": select(takes.c.id, takes.c.recording_url, takes.c.duration_seconds, takes.c.decision,
                       takes.c.twilio_status).where(takes.c.recording_sid == bindparam("recording_sid")),
        "new take": insert(takes).values(position=place_in_case),
        "take heard of": update(takes).where(takes.c.id == bindparam("take_id"))
        .values(recording_url=bindparam("recording_url"), duration_seconds=bindparam("duration_seconds"),
                twilio_status=bindparam("twilio_status")),
        "unseen again": delete(CaseView.__table__).where(CaseView.__table__.c.case_id == bindparam("case_id")),
        "call ended": update(calls).where(calls.c.id == bindparam("call_id")).values(
            status=bindparam("status"), pending_reference=None,
            ended_at=func.coalesce(calls.c.ended_at, bindparam("ended_at"))),
        "waiting takes": select(takes.c.id).where(
            takes.c.call_id == bindparam("call_id"), takes.c.decision == TakeDecision.KEEP,
            takes.c.twilio_status == TwilioRecordingStatus.PENDING),
    }


class SqlCallDesk:
    def __init__(self, session: Session, sealer: Sealer, secret_key: str):
        self.session = session
        self.sealer = sealer
        self.secret_key = secret_key
        self.new_job_ids: list[int] = []
        # One webhook asks about its call several times: its row (with its case's) is read once.
        self._rows: dict[str, CallRow] = {}

    # --- the ordinary path, in plain SQL -------------------------------------------------------------

    def _run(self, name: str, **values):
        # What a rarer path changed through the ORM is written first, so the statement sees it (a no-op
        # when nothing is pending, as on the ordinary path).
        self.session.flush()
        return self.session.connection().execute(_statements()[name], values)

    def _row(self, call_sid: str) -> CallRow:
        """The call's row, made if this is its first webhook."""
        row = self._rows.get(call_sid)
        if row is None:
            found = self._run("call", call_sid=call_sid).first()
            if found is not None:
                row = CallRow(*found)
                row = replace(row, anonymous=True if row.anonymous is None else row.anonymous)
            else:
                # The other columns take their defaults (a random id, in progress); its time, to the hour.
                created = self._run("new call", call_sid=call_sid, started_at=stamp(self.session))
                row = CallRow(created.inserted_primary_key[0])
            self._rows[call_sid] = row
        return row

    def _take(self, recording_sid: str) -> TakeRow | None:
        found = self._run("take", recording_sid=recording_sid).first()
        return None if found is None else TakeRow(*found)

    def _new_take(self, call_sid: str, recording_sid: str, recording_url: str | None, duration: int | None) -> TakeRow:
        row = self._row(call_sid)
        if row.case_id is None:
            self._case(call_sid)  # no case yet (a webhook out of order): the ORM path opens one
            row = self._row(call_sid)
        created = self._run("new take", recording_sid=recording_sid, call_sid=call_sid, call_id=row.id,
                            case_id=row.case_id, position_in_case=row.case_id, recording_url=recording_url,
                            duration_seconds=duration, created_at=stamp(self.session, row.anonymous))
        self._rows[call_sid] = replace(row, takes=row.takes + 1)
        if row.anonymous:
            # Handlers see a take as new if it arrived after they last looked; a rounded time cannot tell,
            # so a new take makes the case unseen again for everyone (as storage/anonymity.py's hook does).
            self._run("unseen again", case_id=row.case_id)
        return TakeRow(created.inserted_primary_key[0], recording_url, duration, "keep", TwilioRecordingStatus.PENDING.value)

    def _heard_of(self, call_sid: str, recording_sid: str, recording_url: str | None, duration: int | None,
                  final_status: RecordingStatus | None = None) -> TakeRow:
        """The take's row with what this webhook knows of it: one INSERT when new, one UPDATE if it changes.
        A final status from Twilio is stored as Twilio spells it; a completed take stays completed."""
        take = self._take(recording_sid)
        if take is None:
            take = self._new_take(call_sid, recording_sid, recording_url, duration)
        completed = take.twilio_status == RecordingStatus.COMPLETED.value
        changed = replace(take, recording_url=take.recording_url or recording_url,
                          duration_seconds=take.duration_seconds if duration is None else duration,
                          twilio_status=final_status.value if final_status and not completed else take.twilio_status)
        if changed != take:
            self._run("take heard of", take_id=take.id, recording_url=changed.recording_url,
                      duration_seconds=changed.duration_seconds, twilio_status=changed.twilio_status)
        return changed

    # --- calls ---------------------------------------------------------------------------------

    def _call(self, call_sid: str) -> Call:
        """The call as an ORM object, for the rarer paths; what the plain path read of it is read again."""
        self._rows.pop(call_sid, None)
        self._row(call_sid)  # made in plain SQL if it is new, with its time rounded; pending changes flushed
        self._rows.pop(call_sid, None)
        # Refreshed from the row even if this session holds the object already: a plain statement may have
        # changed it since (and nothing of the ORM's is pending: _row flushed it).
        return self.session.scalar(select(Call).where(Call.call_sid == call_sid).execution_options(populate_existing=True))

    def _case(self, call_sid: str) -> Case:
        """The call's case; a call that somehow reaches a case step without one gets an anonymous case,
        so whatever the caller says next is still kept."""
        call = self._call(call_sid)
        if call.case is None:
            call.case = self.session.get(Case, self._open_case(anonymous=True).id)
            call.purpose = call.purpose or "report"
        return call.case

    def _open_case(self, anonymous: bool) -> OpenedCase:
        case = open_case_row(self.session, anonymous=anonymous)
        # Its question key pair now, so a handler can put a question to the caller before they ring back.
        # Only the web process holds the PIN key; a desk used without it (an operator's tool, a worker's
        # test of its own secrets) leaves the key to the case's first call-back or `question-keys`.
        if self.secret_key:
            questions.new_question_key(self.session, self.secret_key, case)
        return case

    def start_call(self, call_sid: str) -> None:
        self._row(call_sid)

    def open_report(self, call_sid: str, anonymous: bool) -> None:
        row = self._row(call_sid)
        if row.case_id is None or row.purpose != "report":
            case = self._open_case(anonymous=anonymous)
            self._run("call opened a report", call_id=row.id, purpose="report", case_id=case.id)
            self._rows[call_sid] = replace(row, case_id=case.id, purpose="report", anonymous=anonymous,
                                           reference=case.reference, pin_length=case.pin_length)
            return
        call = self._call(call_sid)
        if call.case is not None and call.purpose == "report":
            # A retried webhook, or a caller who went back: the choice can only become more private,
            # and a report that becomes anonymous keeps no number it was given before.
            if anonymous and not call.case.anonymous:
                call.case.anonymous = True
                for item in [item for item in call.case.items if item.kind == "contact"]:
                    self.sealer.destroy_item(self.session, item)

    def save_contact_number(self, call_sid: str, number: str, confirmed: bool) -> None:
        case = self._case(call_sid)
        if case.anonymous:
            return  # never store a number against an anonymous report
        seal_contact_number(self.session, self.sealer, case, number, confirmed)

    def confirm_contact_number(self, call_sid: str) -> None:
        confirm_contact(self.session, self._case(call_sid))

    def set_category(self, call_sid: str, category: str) -> None:
        row = self._row(call_sid)
        if row.case_id is None:
            self._case(call_sid).category = category
            return
        self._run("category", case_id=row.case_id, category=category, updated_at=stamp(self.session, row.anonymous))

    # --- adding to an earlier report -----------------------------------------------------------

    def remember_reference(self, call_sid: str, reference: str) -> None:
        call = self._call(call_sid)
        call.purpose = "add"
        call.pending_reference = reference

    def unlock(self, call_sid: str, pin: str) -> UnlockOutcome:
        call = self._call(call_sid)
        # This commits the attempt's count on its own before the PIN is checked (storage/cases.py), so
        # nothing that fails later in this request can undo it.
        result = unlock_case(self.session, self.secret_key, call.pending_reference or "", pin)
        call.pending_reference = None
        if result.case is not None:
            call.case = result.case
            # What lets the line open this case's questions on this call, and only while it lasts. To the
            # hour: a call's row keeps no precise time (storage/anonymity.py).
            call.unlocked_at = coarse(utcnow())
            questions.ensure_question_key(self.session, self.secret_key, result.case)  # a case from before questions
            return UnlockOutcome(True, call.failed_unlocks)
        call.failed_unlocks += 1
        return UnlockOutcome(False, call.failed_unlocks)

    def is_adding_to_earlier_report(self, call_sid: str) -> bool:
        return self._row(call_sid).purpose == "add"

    def reference_and_pin(self, call_sid: str) -> tuple[str, str] | None:
        row = self._row(call_sid)
        if row.case_id is None:
            return None
        return row.reference, pin_for(self.secret_key, row.reference, row.pin_length)

    # --- recordings ----------------------------------------------------------------------------

    def take_recorded(self, call_sid: str, recording_sid: str, recording_url: str | None, duration: int | None) -> None:
        self._heard_of(call_sid, recording_sid, recording_url, duration)

    def discard_take(self, call_sid: str, recording_sid: str) -> None:
        recording = self.session.scalar(
            select(Recording).join(Call, Call.id == Recording.call_id)
            .where(Recording.recording_sid == recording_sid, Call.call_sid == call_sid)
        )
        if recording is None or recording.decision == "discard":
            return
        recording.decision = "discard"
        questions.answer_discarded(self.session, recording)
        self._enqueue(DISCARD_RECORDING, recording.id)

    def takes_recorded(self, call_sid: str) -> int:
        """Takes this call has recorded, deleted ones included (the flow caps them)."""
        return self._row(call_sid).takes

    def recording_status(self, call_sid: str, event: RecordingEvent) -> None:
        """Twilio's recording status callback; any number of times, in any order with the action."""
        status = None if event.status is None else RecordingStatus(event.status)
        final = (RecordingStatus.COMPLETED, RecordingStatus.ABSENT, RecordingStatus.FAILED)
        take = self._heard_of(call_sid, event.recording_sid, event.recording_url, event.duration_seconds,
                              status if status in final else None)
        if take.twilio_status == "completed" and take.decision == "keep":
            job = self._enqueue(STORE_RECORDING, take.id)
            if job.state == JobState.QUEUED and job.attempts == 0:
                bring_forward(self.session, job, utcnow())  # it was waiting for this callback

    def call_ended(self, call_sid: str, status: CallStatus | str | None) -> None:
        row = self._row(call_sid)
        # Only a status Twilio sends is ever stored (CallStatus refuses anything else). Its end, to the hour.
        self._run("call ended", call_id=row.id, status=CallStatus(status or CallStatus.COMPLETED).value,
                  ended_at=stamp(self.session))
        for take_id in self._run("waiting takes", call_id=row.id).scalars().all():
            self._enqueue(STORE_RECORDING, take_id, run_after=utcnow() + LATE_FETCH_DELAY)
        # Twilio's record of the call, the caller's number in it, goes too, once the call is final and its
        # takes are gone from Twilio (jobs/calls.py): every call, anonymous or not.
        self._enqueue(DELETE_CALL, call_id=row.id, run_after=utcnow() + call_records.FIRST_TRY)

    def _enqueue(self, kind: str, recording_id: int | None = None, **options):
        job = enqueue(self.session, kind, recording_id, **options)
        self.new_job_ids.append(job.id)
        return job

    # --- a handler's questions (storage/questions.py decides whether this call may hear them) -------

    def _asked(self, call: Call, question, with_text: bool) -> AskedQuestion:
        text = questions.open_for_call(self.session, self.secret_key, call, question) if with_text else None
        return AskedQuestion(text, audio_path(self.secret_key, call.id, question.id))

    def next_question(self, call_sid: str, with_text: bool) -> AskedQuestion | None:
        call = self._call(call_sid)
        while (question := questions.next_for_call(self.session, call)) is not None:
            questions.put_to_caller(self.session, call, question)
            if question.state in questions.OPEN_STATES:  # else withdrawn this moment: the next one
                return self._asked(call, question, with_text)
        return None

    def current_question(self, call_sid: str, with_text: bool) -> AskedQuestion | None:
        call = self._call(call_sid)
        question = questions.current_for_call(self.session, call)
        return None if question is None else self._asked(call, question, with_text)

    def answer_recorded(self, call_sid: str, recording_sid: str, recording_url: str | None, duration: int | None) -> None:
        self.take_recorded(call_sid, recording_sid, recording_url, duration)
        recording = self.session.scalar(select(Recording).where(Recording.recording_sid == recording_sid))
        questions.answer_recorded(self.session, self._call(call_sid), recording)

    def question_text_for_audio(self, call_id: int, question_id: int) -> str | None:
        """For the offline voice's audio: the text of the question this call is putting now, if it may."""
        call = self.session.get(Call, call_id)
        if call is None or call.question_id != question_id:
            return None
        question = questions.current_for_call(self.session, call)
        if question is None:
            return None
        try:
            return questions.open_for_call(self.session, self.secret_key, call, question)
        except questions.QuestionUnavailable:
            return None
