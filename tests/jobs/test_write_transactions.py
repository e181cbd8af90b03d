"""The worker's write transactions, counted: on SQLite each one makes the webhooks wait for the one write
lock. A take stored without transcription costs three: the claim, the sealed audio attached, and the
delete at Twilio noted with the job done. The checks before each call to Twilio write nothing while the
lease has time left."""
from __future__ import annotations

import dataclasses
import threading
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event, select, update

from ivr.desk import SqlCallDesk
from jobs import queue
from jobs.recording import run_job
from storage.models import Call, Job, Recording, utcnow
from tests.support.audio import phone_wav
from tests.support.takes import recorded_take

WRITES = ("INSERT", "UPDATE", "DELETE")


class WriteTransactions:
    """Commits, on one engine, of transactions that ran an INSERT, UPDATE or DELETE."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()
        self._writing: set[int] = set()  # connections whose open transaction has written

    def statement(self, connection, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith(WRITES):
            with self._lock:
                self._writing.add(id(connection))

    def commit(self, connection) -> None:
        with self._lock:
            if id(connection) in self._writing:
                self._writing.discard(id(connection))
                self.count += 1

    def rollback(self, connection) -> None:
        with self._lock:
            self._writing.discard(id(connection))


@contextmanager
def counted_write_transactions(engine):
    counter = WriteTransactions()
    listeners = [("before_cursor_execute", counter.statement), ("commit", counter.commit), ("rollback", counter.rollback)]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield counter
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


def test_a_take_stored_without_transcription_costs_three_write_transactions(hotline, fake_twilio):
    workshop = dataclasses.replace(hotline.workshop, transcriber=None)
    recording_id, sid = recorded_take(hotline, fake_twilio, phone_wav(1.0))

    with counted_write_transactions(hotline.db.engine) as writes:
        job_id = run_job(workshop)

    assert writes.count == 3  # the claim; the sealed audio attached; deleted at Twilio, with the job done
    with hotline.db.session() as session:
        recording = session.get(Recording, recording_id)
        assert recording.audio_item_id is not None and recording.deleted_at_twilio
        assert session.get(Job, job_id).state == "done"
    assert sid not in fake_twilio.recordings


def test_a_call_s_record_is_deleted_in_two_write_transactions(hotline, fake_twilio):
    call_sid = fake_twilio.add_call()
    with hotline.db.session() as session:
        desk = SqlCallDesk(session, hotline.sealer, hotline.settings.secret_key)
        desk.start_call(call_sid)
        fake_twilio.end_call(call_sid)
        desk.call_ended(call_sid, "completed")
        session.commit()
        job_id = session.scalar(select(Job.id).where(Job.kind == queue.DELETE_CALL))
        session.execute(update(Job).where(Job.id == job_id).values(run_after=utcnow()))  # Twilio's minute, passed
        session.commit()
    fake_twilio.make_final(call_sid)

    with counted_write_transactions(hotline.db.engine) as writes:
        assert run_job(hotline.workshop, job_id) == job_id

    assert writes.count == 2  # the claim; the record noted deleted and its ids forgotten, with the job done
    assert fake_twilio.calls[call_sid].deleted
    with hotline.db.session() as session:
        assert session.get(Job, job_id).state == "done"
        assert session.scalar(select(Call.call_sid).where(Call.id == session.get(Job, job_id).call_id)) is None


def _claimed(hotline, fake_twilio) -> queue.Claim:
    recorded_take(hotline, fake_twilio, phone_wav(0.5))
    with hotline.db.session() as session:
        job = queue.claim(session, lease=hotline.workshop.lease)
        return queue.Claim(job.id, job.owner, hotline.workshop.lease)


def _lease_until(hotline, job_id: int):
    with hotline.db.session() as session:
        return session.scalar(select(Job.lease_until).where(Job.id == job_id))


def test_a_check_while_the_lease_has_time_left_writes_nothing(hotline, fake_twilio):
    claim = _claimed(hotline, fake_twilio)
    held_until = _lease_until(hotline, claim.job_id)
    with hotline.db.session() as session, counted_write_transactions(hotline.db.engine) as writes:
        claim.check(session)
        assert not session.in_transaction()
    assert writes.count == 0 and _lease_until(hotline, claim.job_id) == held_until


def test_a_check_on_a_lease_with_less_than_half_left_renews_it(hotline, fake_twilio):
    """So a long download does not start on a lease about to run out (its keeper may have stalled)."""
    claim = _claimed(hotline, fake_twilio)
    running_short = utcnow() + claim.lease / 3
    with hotline.db.session() as session:
        session.execute(update(Job).where(Job.id == claim.job_id).values(lease_until=running_short))
        session.commit()
    with hotline.db.session() as session:
        claim.check(session)
    assert _lease_until(hotline, claim.job_id) > utcnow() + claim.lease - timedelta(seconds=5)
