"""Twilio's record of each call (the caller's number in it) is deleted once the call has ended and its
recordings are gone: a durable job that waits out Twilio's "not yet final" (error 20009) with back-off
for 14 days and more, then raises an alert. Every call, anonymous or not. Once the record is deleted, no
Twilio id of the call is kept."""
from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from ivr.desk import SqlCallDesk
from jobs import calls as call_jobs
from jobs import queue
from jobs.recording import run_job
from jobs.sweep import sweep_twilio
from jobs.worker import run_until_idle
from storage.models import Call, Job, Recording, utcnow
from tests.support.ended_calls import ended_call

TWILIO_ID = re.compile(r"(CA|RE)[0-9a-f]{32}")


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    """The first try straight after the call ends (Twilio advises a minute: the default)."""
    monkeypatch.setattr(call_jobs, "FIRST_TRY", timedelta(0))


def _call_job(hotline) -> Job:
    with hotline.db.session() as session:
        return session.scalar(select(Job).where(Job.kind == queue.DELETE_CALL))


def _make_due(hotline, job_id: int, **changes) -> None:
    with hotline.db.session() as session:
        job = session.get(Job, job_id)
        job.run_after = utcnow()
        for name, value in changes.items():
            setattr(job, name, value)
        session.commit()


def test_once_the_call_has_ended_and_its_recordings_are_deleted_its_record_at_twilio_is_deleted(hotline, fake_twilio):
    call_sid, [sid] = ended_call(hotline, fake_twilio)
    run_until_idle(hotline.workshop)
    assert fake_twilio.calls[call_sid].deleted
    [recording_delete] = fake_twilio.requests("DELETE", sid)
    [call_delete] = fake_twilio.requests("DELETE", call_sid=call_sid)
    assert recording_delete.monotonic < call_delete.monotonic and call_delete.status == 204
    job = _call_job(hotline)
    assert job.state == "done" and job.recording_id is None and job.call_id is not None
    with hotline.db.session() as session:
        assert session.get(Call, job.call_id).deleted_at_twilio


def test_the_call_s_record_waits_while_any_of_its_recordings_is_still_at_twilio(hotline, fake_twilio):
    call_sid, [sid] = ended_call(hotline, fake_twilio)
    fake_twilio.fail_next("GET", sid, status=503, times=1)  # the take is not stored yet
    store = next(job for job in _jobs(hotline) if job.kind == queue.STORE_RECORDING)
    assert run_job(hotline.workshop, store.id) == store.id
    call_job = _call_job(hotline)
    assert run_job(hotline.workshop, call_job.id) == call_job.id
    assert fake_twilio.requests("DELETE", call_sid=call_sid) == []  # not even asked
    job = _call_job(hotline)
    assert job.state == "queued" and "still at Twilio" in job.last_error and not TWILIO_ID.search(job.last_error)
    assert job.run_after > utcnow()
    _make_due(hotline, store.id)
    _make_due(hotline, job.id)
    run_until_idle(hotline.workshop)
    assert fake_twilio.calls[call_sid].deleted and sid not in fake_twilio.recordings


def test_twilio_s_not_final_is_waited_out_with_back_off_for_fourteen_days_then_alerted(hotline, fake_twilio, captured_logs):
    fake_twilio.call_final_after = 10 ** 9  # this call's record never becomes final
    call_sid, _ = ended_call(hotline, fake_twilio)
    run_until_idle(hotline.workshop)
    delays = []
    for _ in range(40):  # far beyond HOTLINE_JOB_MAX_ATTEMPTS: the record can take 14 days to be final
        job = _call_job(hotline)
        assert job.state == "queued" and "not yet final" in job.last_error and not TWILIO_ID.search(job.last_error)
        delays.append((job.run_after - utcnow()).total_seconds())
        _make_due(hotline, job.id)
        run_job(hotline.workshop, job.id)
    assert 50 < delays[0] <= 60  # Twilio: wait at least a minute, then several
    assert delays[1] > delays[0] and max(delays) <= 6 * 3600 and delays[-1] > 5 * 3600
    assert all(request.status == 400 for request in fake_twilio.requests("DELETE", call_sid=call_sid))
    job = _call_job(hotline)
    assert job.state == "queued"
    captured_logs.clear()
    _make_due(hotline, job.id, created_at=utcnow() - timedelta(days=15, hours=1))  # two weeks of refusals
    run_job(hotline.workshop, job.id)
    assert _call_job(hotline).state == "failed"
    alerts = [r.getMessage() for r in captured_logs.records if r.levelno == logging.WARNING and "ALERT" in r.getMessage()]
    assert alerts and not any(TWILIO_ID.search(alert) for alert in alerts)
    assert not any(TWILIO_ID.search(r.getMessage()) for r in captured_logs.records)


def test_every_call_s_record_is_deleted_named_or_anonymous_with_or_without_a_report(hotline, fake_twilio):
    named, _ = ended_call(hotline, fake_twilio, anonymous=False)
    anonymous, _ = ended_call(hotline, fake_twilio, anonymous=True, takes=2)
    hung_up, _ = ended_call(hotline, fake_twilio, report=False, takes=0)  # at the welcome message
    run_until_idle(hotline.workshop)
    assert all(fake_twilio.calls[sid].deleted for sid in (named, anonymous, hung_up))


def test_once_deleted_at_twilio_no_twilio_id_of_the_call_is_kept(hotline, fake_twilio):
    ended_call(hotline, fake_twilio, anonymous=True, takes=2)
    ended_call(hotline, fake_twilio, anonymous=False)
    run_until_idle(hotline.workshop)
    with hotline.db.session() as session:
        for call in session.scalars(select(Call)):
            assert call.deleted_at_twilio and call.call_sid is None
        for recording in session.scalars(select(Recording)):
            assert recording.deleted_at_twilio and recording.call_id is not None
            assert (recording.recording_sid, recording.call_sid, recording.recording_url) == (None,) * 3


def test_until_then_the_ids_the_jobs_must_name_to_twilio_are_kept(hotline, fake_twilio, monkeypatch):
    monkeypatch.setattr(call_jobs, "FIRST_TRY", timedelta(hours=1))
    call_sid, [sid] = ended_call(hotline, fake_twilio, takes=1)
    run_until_idle(hotline.workshop)
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording))
        assert recording.deleted_at_twilio and recording.recording_sid == sid  # a late callback still finds it
        call = session.scalar(select(Call))
        assert call.call_sid == call_sid and not call.deleted_at_twilio  # needed to delete the call's record


def test_twilio_errors_name_no_sid_in_the_job_or_the_log(hotline, fake_twilio, captured_logs):
    call_sid, [sid] = ended_call(hotline, fake_twilio)
    fake_twilio.fail_next("GET", sid, status=503)
    fake_twilio.fail_next("DELETE", call_sid, status=500)
    for _ in range(4):
        for job in _jobs(hotline):
            if job.state == "queued":
                _make_due(hotline, job.id)
        run_until_idle(hotline.workshop)
    errors = [job.last_error for job in _jobs(hotline)]
    assert any(error and "503" in error for error in errors) or fake_twilio.requests("GET", sid)[0].status == 503
    assert fake_twilio.calls[call_sid].deleted
    assert not any(TWILIO_ID.search(error or "") for error in errors)
    assert not any(TWILIO_ID.search(r.getMessage()) for r in captured_logs.records)


def test_a_call_whose_status_callback_was_lost_is_found_by_the_sweep(hotline, fake_twilio):
    call_sid = fake_twilio.add_call()
    with hotline.db.session() as session:
        SqlCallDesk(session, hotline.sealer, hotline.settings.secret_key).start_call(call_sid)
        session.commit()
    fake_twilio.end_call(call_sid)  # ... but its status callback never reached us
    sweep_twilio(hotline.workshop)
    assert _call_job(hotline) is None  # it may still be going on
    with hotline.db.session() as session:
        session.scalar(select(Call)).started_at = utcnow() - call_jobs.LONGEST_CALL - timedelta(days=1)
        session.commit()
    sweep_twilio(hotline.workshop)
    run_until_idle(hotline.workshop)
    assert fake_twilio.calls[call_sid].deleted


def test_an_operator_retries_a_call_s_record_that_gave_up(app, hotline, fake_twilio):
    fake_twilio.call_final_after = 10 ** 9
    call_sid, _ = ended_call(hotline, fake_twilio)
    run_until_idle(hotline.workshop)
    job = _call_job(hotline)
    _make_due(hotline, job.id, created_at=utcnow() - timedelta(days=16))
    run_job(hotline.workshop, job.id)
    assert _call_job(hotline).state == "failed"
    runner = app.test_cli_runner()
    hotline.settings = hotline.settings.with_overrides(transcription=False)
    status = runner.invoke(args=["jobs", "status"]).output
    assert "delete-call" in status and "1 call record" in status and call_sid not in status
    assert "queued 1 jobs again" in runner.invoke(args=["jobs", "retry"]).output
    fake_twilio.make_final(call_sid)
    runner.invoke(args=["jobs", "run"])
    assert fake_twilio.calls[call_sid].deleted and _call_job(hotline).state == "done"
    assert "nothing" in runner.invoke(args=["jobs", "status"]).output.split("still at Twilio")[1].splitlines()[0]


def test_cases_shows_each_call_s_record_still_at_twilio(app, hotline, fake_twilio, monkeypatch):
    monkeypatch.setattr(call_jobs, "FIRST_TRY", timedelta(hours=1))
    call_sid, _ = ended_call(hotline, fake_twilio)
    runner = app.test_cli_runner()
    output = runner.invoke(args=["cases"]).output
    assert "call 1: record still at Twilio" in output and "still at Twilio" in output.split("take")[1]
    assert call_sid not in output
    run_until_idle(hotline.workshop)  # the take is stored; the call's record waits for its hour
    output = runner.invoke(args=["cases"]).output
    assert "call 1: record still at Twilio" in output
    _make_due(hotline, _call_job(hotline).id)
    run_until_idle(hotline.workshop)
    output = runner.invoke(args=["cases"]).output
    assert "call 1: record deleted at Twilio" in output and "still at Twilio" not in output


def _jobs(hotline) -> list[Job]:
    with hotline.db.session() as session:
        return list(session.scalars(select(Job)))


def test_a_simulated_call_s_record_is_deleted_at_the_fake_before_the_command_ends(app, hotline, monkeypatch):
    monkeypatch.undo()  # Twilio's minute, as in use: the command must not leave the job to a later worker
    hotline.settings = hotline.settings.with_overrides(transcription=False)
    result = app.test_cli_runner().invoke(args=["simulate-call", "--keys", "1,1,1,REC-HANGUP", "--linger", "0"])
    assert result.exit_code == 0, result.output
    with hotline.db.session() as session:
        assert {(job.kind, job.state) for job in session.scalars(select(Job))} == {
            ("store-recording", "done"), ("delete-call", "done")}
        assert all(call.deleted_at_twilio and call.call_sid is None for call in session.scalars(select(Call)))
