"""The call flow's memory, kept in the database. One desk per webhook request; the view commits."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr.events import CallStatus, RecordingEvent, RecordingStatus
from ivr.flow import AskedQuestion, UnlockOutcome
from ivr.question_voice import audio_path
from jobs import calls as call_records
from jobs.queue import DELETE_CALL, DISCARD_RECORDING, STORE_RECORDING, enqueue
from jobs.takes import next_position
from storage import questions
from storage.anonymity import coarse
from storage.cases import Sealer, confirm_contact, open_case, seal_contact_number, unlock_case
from storage.models import Call, Case, Recording, utcnow
from storage.references import pin_for

# A take whose status callback never came is fetched anyway, a little after the call ends.
LATE_FETCH_DELAY = timedelta(seconds=60)


class SqlCallDesk:
    def __init__(self, session: Session, sealer: Sealer, secret_key: str):
        self.session = session
        self.sealer = sealer
        self.secret_key = secret_key
        self.new_job_ids: list[int] = []

    # --- calls ---------------------------------------------------------------------------------

    def _call(self, call_sid: str) -> Call:
        call = self.session.scalar(select(Call).where(Call.call_sid == call_sid))
        if call is None:
            call = Call(call_sid=call_sid)
            self.session.add(call)
            self.session.flush()
        return call

    def _case(self, call_sid: str) -> Case:
        """The call's case; a call that somehow reaches a case step without one gets an anonymous case,
        so whatever the caller says next is still kept."""
        call = self._call(call_sid)
        if call.case is None:
            call.case = self._open_case(anonymous=True)
            call.purpose = call.purpose or "report"
        return call.case

    def _open_case(self, anonymous: bool) -> Case:
        case = open_case(self.session, anonymous=anonymous)
        # Its question key pair now, so a handler can put a question to the caller before they ring back.
        questions.ensure_question_key(self.session, self.secret_key, case)
        return case

    def start_call(self, call_sid: str) -> None:
        self._call(call_sid)

    def open_report(self, call_sid: str, anonymous: bool) -> None:
        call = self._call(call_sid)
        if call.case is not None and call.purpose == "report":
            # A retried webhook, or a caller who went back: the choice can only become more private,
            # and a report that becomes anonymous keeps no number it was given before.
            if anonymous and not call.case.anonymous:
                call.case.anonymous = True
                for item in [item for item in call.case.items if item.kind == "contact"]:
                    self.sealer.destroy_item(self.session, item)
            return
        call.purpose = "report"
        call.case = self._open_case(anonymous=anonymous)

    def save_contact_number(self, call_sid: str, number: str, confirmed: bool) -> None:
        case = self._case(call_sid)
        if case.anonymous:
            return  # never store a number against an anonymous report
        seal_contact_number(self.session, self.sealer, case, number, confirmed)

    def confirm_contact_number(self, call_sid: str) -> None:
        confirm_contact(self.session, self._case(call_sid))

    def set_category(self, call_sid: str, category: str) -> None:
        self._case(call_sid).category = category

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
        return self._call(call_sid).purpose == "add"

    def reference_and_pin(self, call_sid: str) -> tuple[str, str] | None:
        call = self._call(call_sid)
        if call.case is None:
            return None
        return call.case.reference, pin_for(self.secret_key, call.case.reference, call.case.pin_length)

    # --- recordings ----------------------------------------------------------------------------

    def _recording(self, call_sid: str, recording_sid: str) -> Recording:
        recording = self.session.scalar(select(Recording).where(Recording.recording_sid == recording_sid))
        if recording is None:
            case = self._case(call_sid)
            recording = Recording(recording_sid=recording_sid, call_sid=call_sid, call_id=self._call(call_sid).id,
                                  case_id=case.id, position=next_position(self.session, case.id))
            self.session.add(recording)
            self.session.flush()
        return recording

    def take_recorded(self, call_sid: str, recording_sid: str, recording_url: str | None, duration: int | None) -> None:
        recording = self._recording(call_sid, recording_sid)
        recording.recording_url = recording.recording_url or recording_url
        if duration is not None:
            recording.duration_seconds = duration

    def discard_take(self, call_sid: str, recording_sid: str) -> None:
        recording = self.session.scalar(
            select(Recording).join(Call, Call.id == Recording.call_id)
            .where(Recording.recording_sid == recording_sid, Call.call_sid == call_sid)
        )
        if recording is None or recording.decision == "discard":
            return
        recording.decision = "discard"
        questions.answer_discarded(self.session, recording)
        self._enqueue(DISCARD_RECORDING, recording)

    def takes_recorded(self, call_sid: str) -> int:
        """Takes this call has recorded, deleted ones included (the flow caps them)."""
        return self.session.scalar(
            select(func.count()).select_from(Recording).join(Call, Call.id == Recording.call_id).where(Call.call_sid == call_sid)
        ) or 0

    def recording_status(self, call_sid: str, event: RecordingEvent) -> None:
        """Twilio's recording status callback; any number of times, in any order with the action."""
        recording = self._recording(call_sid, event.recording_sid)
        recording.recording_url = recording.recording_url or event.recording_url
        if event.duration_seconds is not None:
            recording.duration_seconds = event.duration_seconds
        status = None if event.status is None else RecordingStatus(event.status)
        final = (RecordingStatus.COMPLETED, RecordingStatus.ABSENT, RecordingStatus.FAILED)
        if status in final and recording.twilio_status != RecordingStatus.COMPLETED.value:
            recording.twilio_status = status.value  # stored as Twilio spells it, a plain string
        if recording.twilio_status == "completed" and recording.decision == "keep":
            job = self._enqueue(STORE_RECORDING, recording)
            if job.state == "queued" and job.attempts == 0:
                job.run_after = min(job.run_after, utcnow())  # it was waiting for this callback

    def call_ended(self, call_sid: str, status: CallStatus | str | None) -> None:
        call = self._call(call_sid)
        if call.ended_at is None:
            call.ended_at = utcnow()
        # Only a status Twilio sends is ever stored (CallStatus refuses anything else).
        call.status = CallStatus(status or CallStatus.COMPLETED).value
        call.pending_reference = None
        pending = self.session.scalars(
            select(Recording).where(
                Recording.call_id == call.id, Recording.decision == "keep", Recording.twilio_status == "pending"
            )
        )
        for recording in pending:
            job = self._enqueue(STORE_RECORDING, recording)
            if job.attempts == 0:
                job.run_after = utcnow() + LATE_FETCH_DELAY
        # Twilio's record of the call, the caller's number in it, goes too, once the call is final and its
        # takes are gone from Twilio (jobs/calls.py): every call, anonymous or not.
        job = enqueue(self.session, DELETE_CALL, call_id=call.id)
        if job.attempts == 0 and job.state == "queued":
            job.run_after = utcnow() + call_records.FIRST_TRY
        self.new_job_ids.append(job.id)

    def _enqueue(self, kind: str, recording: Recording):
        job = enqueue(self.session, kind, recording.id)
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
        recording = self._recording(call_sid, recording_sid)
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
