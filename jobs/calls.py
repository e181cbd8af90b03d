"""The call-record job: delete Twilio's record of a call, which holds the caller's number, once the call
has ended and every recording of it is deleted at Twilio; then forget every Twilio id of the call.

Twilio refuses (HTTP 400, error 20009) until a call is final: it advises waiting at least a minute after
the call ends, and in rare cases finalising takes up to 14 days. So the first try is FIRST_TRY after the
call ends (the status callback makes the job, ivr/desk.py), and each refusal backs off, from a minute,
doubling, to at most MAX_BACKOFF, for PATIENCE after the job was made: only then does it give up with an
alert (`/healthz`, an ALERT log line at every sweep; an operator's `jobs retry` starts it again). A call
whose takes are still at Twilio (being stored, or deleted after a re-recording) waits the same way:
Twilio's record of the call goes last, and Twilio would not delete it before its recordings anyway.

Every call, anonymous or not (a named caller's number is sealed with us; Twilio's copy serves nothing),
and calls that never reached a case. A call whose status callback never came is found by the sweep once
it is older than LONGEST_CALL (jobs/sweep.py).

Once Twilio's record is deleted, the call's CallSid and its takes' RecordingSids, CallSids and recording
URLs are erased: nothing of ours points at the phone network's record of the call any more. Until then
they are kept, in the clear: each job must name them to Twilio, and a retried callback must find its row.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.compaction import empty_log_soon
from storage.models import Call, Job, JobState, Recording, TwilioRecordingStatus, utcnow

log = logging.getLogger("hotline.jobs")

FIRST_TRY = timedelta(minutes=1)  # after the call ends: Twilio advises at least a minute
RETRY_BASE_SECONDS = 60.0  # then 2, 4, 8 ... minutes
MAX_BACKOFF = timedelta(hours=6)
# How long refusals are waited out, from when the job was made: 14 days and more, even when that time is
# rounded down to the day (HOTLINE_ANONYMOUS_TIME=day).
PATIENCE = timedelta(days=15)
LONGEST_CALL = timedelta(hours=4)  # Twilio ends a call after 4 hours at most


class TakesStillAtTwilio(Exception):
    """Some of the call's recordings are still at Twilio: its record waits for them."""


def delete_call_record(workshop, session: Session, call_id: int, commit: Callable[[], None], *,
                       check: Callable[[], None] | None = None, finish: Callable[[], None] | None = None) -> None:
    """commit: each stage's work; check: before a call to Twilio, ends the transaction; finish: the
    job's last work (jobs/recording.py run_job: marks the job done with it). Each is commit if not given."""
    check, finish = check or commit, finish or commit
    call = session.get(Call, call_id, populate_existing=True)
    if call is None:
        raise LookupError(f"call {call_id} does not exist")
    if not call.deleted_at_twilio:
        _delete_takes_with_nothing_to_store(workshop, session, call_id, commit, check)
        waiting = session.scalars(select(Recording.id).where(
            Recording.call_id == call_id, Recording.deleted_at_twilio.is_(False))).all()
        if waiting:
            raise TakesStillAtTwilio(f"{len(waiting)} of the call's recordings are still at Twilio; its record waits for them")
        sid = call.call_sid
        check()  # still this worker's job before anything is done at Twilio
        if sid is not None:
            workshop.twilio.delete_call(sid)
        call = session.get(Call, call_id, populate_existing=True)
        call.deleted_at_twilio = True
    forget_twilio_ids(session, call)
    finish()  # with the job marked done: a worker that dies first leaves the job to run again (404: done)
    empty_log_soon(workshop.db)  # SQLite's log keeps the overwritten ids until emptied
    log.info("call %s: its record at Twilio is deleted, and no Twilio id of it is kept", call_id)


def _delete_takes_with_nothing_to_store(workshop, session: Session, call_id: int, commit: Callable[[], None],
                                        check: Callable[[], None]) -> None:
    """An empty or failed recording has no job of its own: Twilio's copy of it, if any, goes here."""
    busy = select(Job.id).where(Job.recording_id == Recording.id, Job.state.in_((JobState.QUEUED, JobState.RUNNING)))
    takes = session.execute(select(Recording.id, Recording.recording_sid).where(
        Recording.call_id == call_id, Recording.deleted_at_twilio.is_(False),
        Recording.twilio_status.in_((TwilioRecordingStatus.ABSENT, TwilioRecordingStatus.FAILED)), ~busy.exists(),
    )).all()
    for take_id, sid in takes:
        check()
        if sid is not None:
            workshop.twilio.delete_recording(sid)
        session.get(Recording, take_id, populate_existing=True).deleted_at_twilio = True
        commit()


def forget_twilio_ids(session: Session, call: Call) -> None:
    """Erase the call's CallSid and every RecordingSid, CallSid and recording URL of its takes."""
    call.call_sid = None
    for take in session.scalars(select(Recording).where(Recording.call_id == call.id)):
        take.recording_sid = take.call_sid = take.recording_url = None


def take_deleted(session: Session, call_id: int | None) -> None:
    """A take of the call is now deleted at Twilio: a call-record job that was waiting for it runs now,
    rather than at the end of its back-off (one that has not had its first try keeps Twilio's minute)."""
    if call_id is None:
        return
    job = session.scalar(select(Job).where(Job.call_id == call_id, Job.state == JobState.QUEUED, Job.attempts > 0))
    if job is not None:
        job.run_after = min(job.run_after, utcnow())
