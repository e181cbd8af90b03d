"""The sweep: what Twilio still holds that our callbacks missed, and jobs that gave up.

Twilio's webhooks can be lost (our server down, a network fault), and a recording that no webhook told
us about would stay at Twilio, with the call it belongs to, until someone deletes it by hand. So every
HOTLINE_TWILIO_SWEEP_SECONDS each worker lists the account's recordings and, for each one that has
finished and is older than the longest take plus SETTLE_MARGIN (so callbacks still on their way are
never raced):

- a take we know and the caller kept, not yet stored: its store job is made sure of (queued now);
- a take we know, already stored (or with nothing to store: absent, failed): deleted at Twilio again;
- a take the caller deleted: deleted at Twilio now; its discard job destroys whatever we hold;
- a recording we never heard of, of a call we know that has a case: taken in as a take of that case;
- any other recording: deleted. The Twilio account must therefore serve this hotline only;
- then the account's call records: of each call final (completed, busy, failed, no-answer, canceled)
  that ended longer ago than SETTLE_MARGIN, one we know gets its call-record job (jobs/calls.py) if it
  has none; one we never heard of is deleted at Twilio (if Twilio refuses, not yet final or with
  recordings left, the next sweep tries again). Calls still going or just ended are left alone.

Every sweep also repeats the alert for jobs that gave up, until an operator deals with them, and makes
the call-record job (jobs/calls.py) of any call whose status callback never came, once it is older than
the longest call Twilio allows: Twilio's record of it, the caller's number in it, goes too.
Several workers sweeping at once is harmless: each action is idempotent, and a take two sweeps try to
take in at once is inserted once (the loser's insert fails on the unique RecordingSid and is skipped).
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from jobs import calls, queue
from jobs.takes import DISCARD, next_position
from jobs.twilio_rest import CallNotFinal, TwilioUnavailable
from storage.models import Call, Job, JobState, Recording, TwilioRecordingStatus, utcnow

log = logging.getLogger("hotline.sweep")

SETTLE_MARGIN = timedelta(minutes=10)
# A recording's status in Twilio's list; any other (in-progress, paused, stopped, processing): a call still going.
FINISHED = (TwilioRecordingStatus.COMPLETED, TwilioRecordingStatus.ABSENT, TwilioRecordingStatus.FAILED)
_RECORDING_SID = re.compile(r"RE[0-9a-f]{32}")
_CALL_SID = re.compile(r"CA[0-9a-f]{32}")
# A call's status in Twilio's list once it is over; any other (queued, ringing, in-progress): still going.
FINAL_CALL = ("completed", "busy", "failed", "no-answer", "canceled")


def sweep_twilio(workshop, now: datetime | None = None) -> Counter | None:
    """One sweep; returns what it did per recording and call (e.g. Counter(deleted=2, queued=1,
    **{"call deleted": 1})), or None if Twilio could list neither (the next sweep tries again). A
    failure to list one does not stop the other. New jobs are left due in the database."""
    alert_failed_jobs(workshop)
    calls_without_status_callback(workshop, now)
    now = now or utcnow()
    recordings = _sweep_recordings(workshop, now)  # first: a call's record goes once its recordings are gone
    call_records = _sweep_calls(workshop, now)
    if recordings is None and call_records is None:
        return None
    done = Counter()
    done.update(recordings or {})
    done.update(call_records or {})
    if any(action in done for action in ("deleted", "queued", "taken in", "failed", "call deleted", "call job queued", "call failed")):
        log.info("Twilio sweep: %s", ", ".join(f"{count} {action}" for action, count in sorted(done.items())))
    return done


def _sweep_recordings(workshop, now: datetime) -> Counter | None:
    try:
        listing = list(workshop.twilio.list_recordings())
    except TwilioUnavailable as error:
        log.warning("Twilio sweep: could not list the recordings Twilio holds (%s); trying again next sweep", error)
        return None
    settled_before = now - timedelta(seconds=workshop.settings.max_recording_seconds) - SETTLE_MARGIN
    done: Counter = Counter()
    for resource in listing:
        try:
            done[_sweep_one(workshop, resource, settled_before)] += 1
        except TwilioUnavailable as error:
            done["failed"] += 1
            log.warning("Twilio sweep: %s", error)
        except IntegrityError:
            done["taken in elsewhere"] += 1  # another worker's sweep inserted it first
    return done


def _sweep_calls(workshop, now: datetime) -> Counter | None:
    try:
        listing = list(workshop.twilio.list_calls())
    except TwilioUnavailable as error:
        log.warning("Twilio sweep: could not list the call records Twilio holds (%s); trying again next sweep", error)
        return None
    settled_before = now - SETTLE_MARGIN
    done: Counter = Counter()
    for resource in listing:
        try:
            done[_sweep_call(workshop, resource, settled_before)] += 1
        except CallNotFinal:
            done["call not final"] += 1  # or recordings of it are left: the next sweep tries again
        except TwilioUnavailable as error:
            done["call failed"] += 1
            log.warning("Twilio sweep: %s", error)
    return done


def _sweep_call(workshop, resource: dict, settled_before: datetime) -> str:
    sid, status = resource.get("sid"), resource.get("status")
    if not isinstance(sid, str) or not _CALL_SID.fullmatch(sid):
        return "not a call SID"
    if status not in FINAL_CALL:
        return "call still going"
    ended = _twilio_time(resource.get("end_time"))
    if ended is None or ended > settled_before:
        return "call too recent"
    with workshop.db.session() as session:
        call_id = session.scalar(select(Call.id).where(Call.call_sid == sid))
        if call_id is not None:
            if session.scalar(select(Job.id).where(Job.kind == queue.DELETE_CALL, Job.call_id == call_id)) is not None:
                return "call has its job"  # waiting, done (Twilio catching up) or gave up (alerted)
            queue.enqueue(session, queue.DELETE_CALL, call_id=call_id)
            session.commit()
            return "call job queued"
    workshop.twilio.delete_call(sid)  # nothing held open across the call to Twilio
    return "call deleted"


def _sweep_one(workshop, resource: dict, settled_before: datetime) -> str:
    sid, status = resource.get("sid"), resource.get("status")
    if not isinstance(sid, str) or not _RECORDING_SID.fullmatch(sid):
        return "not a recording SID"
    if status not in FINISHED:
        return "still recording"
    created = _twilio_time(resource.get("date_created"))
    if created is None or created > settled_before:
        return "too recent"
    with workshop.db.session() as session:
        recording = session.scalar(select(Recording).where(Recording.recording_sid == sid))
        if recording is None:
            return _unknown(workshop, session, resource, sid, status)
        if recording.twilio_status == TwilioRecordingStatus.PENDING:
            recording.twilio_status = TwilioRecordingStatus(status)
        if recording.decision == DISCARD:
            # Normally there already; one that gave up is queued again: a deleted take must not stay anywhere.
            queue.enqueue(session, queue.DISCARD_RECORDING, recording.id, reopen=True)
            return _delete(workshop, session, recording)
        if recording.deleted_at_twilio or status != TwilioRecordingStatus.COMPLETED:
            return _delete(workshop, session, recording)  # our copy is committed, or there is nothing to fetch
        job = session.scalar(select(Job).where(Job.kind == queue.STORE_RECORDING, Job.recording_id == recording.id))
        if job is not None and job.state in (JobState.QUEUED, JobState.RUNNING):
            session.commit()
            return "waiting for its job"
        if job is not None and job.state == JobState.FAILED:
            session.commit()
            return "job gave up"  # alerted; `jobs retry` queues it again
        queue.enqueue(session, queue.STORE_RECORDING, recording.id, reopen=True)
        session.commit()
        return "queued"


def _unknown(workshop, session, resource: dict, sid: str, status: str) -> str:
    call_sid = resource.get("call_sid")
    call = None
    if isinstance(call_sid, str) and _CALL_SID.fullmatch(call_sid):
        call = session.scalar(select(Call).where(Call.call_sid == call_sid))
    if call is not None and call.case_id is not None and status == TwilioRecordingStatus.COMPLETED:
        recording = Recording(
            recording_sid=sid, call_sid=call_sid, call_id=call.id, case_id=call.case_id,
            twilio_status=TwilioRecordingStatus(status), position=next_position(session, call.case_id),
            recording_url=workshop.twilio.recording_url(sid), duration_seconds=_duration(resource),
        )
        session.add(recording)
        session.flush()
        queue.enqueue(session, queue.STORE_RECORDING, recording.id)
        session.commit()
        log.info("Twilio sweep: took in recording %s of case %s, which no webhook announced", recording.id, call.case_id)
        return "taken in"
    session.rollback()
    workshop.twilio.delete_recording(sid)
    return "deleted"


def _delete(workshop, session, recording: Recording) -> str:
    recording_id, sid = recording.id, recording.recording_sid
    session.commit()  # nothing held open across the call to Twilio
    workshop.twilio.delete_recording(sid)
    recording = session.get(Recording, recording_id, populate_existing=True)
    recording.deleted_at_twilio = True
    calls.take_deleted(session, recording.call_id)
    session.commit()
    return "deleted"


def calls_without_status_callback(workshop, now: datetime | None = None) -> int:
    """Make the call-record job of each call whose status callback never came (so that no job was made),
    once it started longer ago than any call lasts (and than its start time's rounding). Returns how many."""
    # started_at is rounded down, to the day at most (storage/anonymity.py): a day more, to be sure.
    started_before = (now or utcnow()) - calls.LONGEST_CALL - timedelta(days=1)
    has_job = select(Job.id).where(Job.call_id == Call.id, Job.kind == queue.DELETE_CALL).exists()
    try:
        with workshop.db.session() as session:
            forgotten = session.scalars(select(Call.id).where(
                Call.deleted_at_twilio.is_(False), Call.started_at < started_before, ~has_job)).all()
            for call_id in forgotten:
                queue.enqueue(session, queue.DELETE_CALL, call_id=call_id)
            session.commit()
    except Exception as error:
        log.warning("could not look for calls whose status callback never came: %s", type(error).__name__)
        return 0
    if forgotten:
        log.info("Twilio sweep: %d calls never said they ended; their records at Twilio are to be deleted", len(forgotten))
    return len(forgotten)


def _twilio_time(value) -> datetime | None:
    """Twilio's dates are RFC 2822 ("Tue, 01 Dec 2026 10:00:00 +0000")."""
    if not isinstance(value, str):
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _duration(resource: dict) -> int | None:
    raw = resource.get("duration")
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 6:
        return int(raw)
    return None


def alert_failed_jobs(workshop) -> list[tuple[int, str]]:
    """A warning for jobs that used every attempt; /healthz names them too. Returns (id, kind) of each."""
    try:
        with workshop.db.session() as session:
            failed = [(job.id, job.kind) for job in queue.failed_jobs(session)]
    except Exception as error:
        log.warning("could not check for jobs that gave up: %s", type(error).__name__)
        return []
    if failed:
        log.warning("ALERT: %d jobs gave up and wait for an operator (see flask --app app jobs status, then jobs retry): %s",
                    len(failed), ", ".join(f"job {job_id} ({kind})" for job_id, kind in failed[:20]))
    return failed
