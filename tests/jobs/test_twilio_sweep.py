"""The sweep: whatever a lost callback left at Twilio is fetched (if the caller kept it) or deleted."""
from __future__ import annotations

import json
import re
import secrets
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from ivr.desk import SqlCallDesk
from jobs.sweep import sweep_twilio
from jobs.twilio_rest import TwilioUnavailable
from jobs.worker import InProcessWorker, run_until_idle
from storage.models import Case, Job, Recording, SealedItem, utcnow
from tests.support.audio import phone_wav
from tests.support.processes import wait_until

LONG_AGO = timedelta(hours=2)


def _old(fake_twilio, *, call_sid=None, status="completed") -> str:
    sid, _ = fake_twilio.add_recording(phone_wav(0.5), call_sid=call_sid, created_at=utcnow() - LONG_AGO, status=status)
    return sid


def _new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


def _desk(session, hotline) -> SqlCallDesk:
    return SqlCallDesk(session, hotline.sealer, hotline.settings.secret_key)


def test_the_fake_lists_an_account_s_recordings_page_by_page_as_twilio_does(hotline, fake_twilio):
    sids = {fake_twilio.add_recording(phone_wav(0.2))[0] for _ in range(5)}
    listed = list(hotline.workshop.twilio.list_recordings(page_size=2))
    assert {r["sid"] for r in listed} == sids and len(listed) == 5
    assert len(fake_twilio.requests("GET")) == 3
    first = requests.get(f"{fake_twilio.api_base}/2010-04-01/Accounts/{fake_twilio.account_sid}/Recordings.json",
                         params={"PageSize": 2}, auth=(fake_twilio.account_sid, fake_twilio.auth_token), timeout=5).json()
    assert first["page"] == 0 and first["page_size"] == 2 and len(first["recordings"]) == 2
    assert first["next_page_uri"].startswith(f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Recordings.json?")
    assert first["previous_page_uri"] is None and first["uri"].startswith("/2010-04-01/")
    unauthenticated = requests.get(f"{fake_twilio.api_base}/2010-04-01/Accounts/{fake_twilio.account_sid}/Recordings.json", timeout=5)
    assert unauthenticated.status_code == 401


def test_the_listing_never_follows_a_next_page_elsewhere(hotline, fake_twilio):
    body = json.dumps({"recordings": [], "page": 0, "page_size": 50, "uri": "/x", "first_page_uri": "/x",
                       "previous_page_uri": None, "next_page_uri": "https://attacker.example/2010-04-01/steal"})
    fake_twilio.fail_next("GET", "/Recordings.json", status=200, body=body)
    with pytest.raises(TwilioUnavailable):
        list(hotline.workshop.twilio.list_recordings())


def test_a_sweep_deletes_old_recordings_nobody_heard_of_and_leaves_live_ones(hotline, fake_twilio):
    orphan = _old(fake_twilio)
    young, _ = fake_twilio.add_recording(phone_wav(0.5))  # its callbacks may be on their way
    recording_now = _old(fake_twilio, status="in-progress")
    sweep_twilio(hotline.workshop)
    assert orphan not in fake_twilio.recordings
    assert young in fake_twilio.recordings and recording_now in fake_twilio.recordings
    with hotline.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Recording)) == 0


def test_a_sweep_fetches_a_kept_take_whose_callbacks_were_all_lost(hotline, fake_twilio):
    call_sid = _new_call_sid()
    sid = _old(fake_twilio, call_sid=call_sid)
    with hotline.db.session() as session:
        desk = _desk(session, hotline)
        desk.open_report(call_sid, anonymous=True)
        desk.take_recorded(call_sid, sid, fake_twilio.recording_url(sid), 1)  # the action webhook arrived...
        session.commit()  # ...but neither the recording status nor the call status callback did
    assert run_until_idle(hotline.workshop) == 0
    sweep_twilio(hotline.workshop)
    assert run_until_idle(hotline.workshop) == 1
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording))
        assert recording.audio_item_id is not None and recording.deleted_at_twilio
        assert recording.twilio_status == "completed"
    assert sid not in fake_twilio.recordings


def test_a_sweep_ingests_a_take_of_a_known_call_that_no_webhook_announced(hotline, fake_twilio):
    call_sid = _new_call_sid()
    sid = _old(fake_twilio, call_sid=call_sid)
    with hotline.db.session() as session:
        _desk(session, hotline).open_report(call_sid, anonymous=True)
        session.commit()
    sweep_twilio(hotline.workshop)
    run_until_idle(hotline.workshop)
    with hotline.db.session() as session:
        recording = session.scalar(select(Recording))
        assert recording.recording_sid == sid and recording.case_id == session.scalar(select(Case.id))
        assert recording.audio_item_id is not None and recording.deleted_at_twilio
    assert sid not in fake_twilio.recordings


def test_a_sweep_deletes_a_discarded_take_left_at_twilio(hotline, fake_twilio):
    call_sid = _new_call_sid()
    sid = _old(fake_twilio, call_sid=call_sid)
    with hotline.db.session() as session:
        desk = _desk(session, hotline)
        desk.open_report(call_sid, anonymous=True)
        desk.take_recorded(call_sid, sid, fake_twilio.recording_url(sid), 1)
        desk.discard_take(call_sid, sid)
        session.commit()
        job = session.scalar(select(Job))
        job.state, job.last_error = "failed", "Twilio answered 500"  # the discard job gave up
        session.commit()
    sweep_twilio(hotline.workshop)
    assert sid not in fake_twilio.recordings
    with hotline.db.session() as session:
        assert session.scalar(select(Recording.deleted_at_twilio))


def test_a_sweep_leaves_a_kept_take_with_a_waiting_job_alone(hotline, fake_twilio):
    call_sid = _new_call_sid()
    sid = _old(fake_twilio, call_sid=call_sid)
    with hotline.db.session() as session:
        desk = _desk(session, hotline)
        desk.open_report(call_sid, anonymous=True)
        desk.take_recorded(call_sid, sid, fake_twilio.recording_url(sid), 1)
        desk.call_ended(call_sid, "completed")  # a late fetch is queued for a minute from now
        session.commit()
    sweep_twilio(hotline.workshop)
    assert sid in fake_twilio.recordings
    with hotline.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.kind == "store-recording")) == 1
        assert session.scalar(select(func.count()).select_from(SealedItem)) == 0


def test_a_sweep_that_cannot_reach_twilio_says_so_and_changes_nothing(hotline, fake_twilio, captured_logs):
    orphan = _old(fake_twilio)
    fake_twilio.fail_next("GET", "/Recordings.json", status=503)
    sweep_twilio(hotline.workshop)  # does not raise: the next sweep tries again
    assert orphan in fake_twilio.recordings
    assert any(r.levelname == "WARNING" and "sweep" in r.getMessage() for r in captured_logs.records)
    sweep_twilio(hotline.workshop)
    assert orphan not in fake_twilio.recordings


def test_the_workers_sweep_by_themselves(hotline, fake_twilio):
    orphan = _old(fake_twilio)
    workshop = hotline.workshop
    workshop.settings = workshop.settings.with_overrides(twilio_sweep_seconds=1)
    worker = InProcessWorker(workshop, threads=1, poll_seconds=0.2)
    worker.start()
    try:
        assert wait_until(lambda: orphan not in fake_twilio.recordings, timeout=10)
    finally:
        worker.stop()


def _finished_call(fake_twilio, *, ended_ago=LONG_AGO, status="completed") -> str:
    sid = fake_twilio.add_call(started_at=utcnow() - ended_ago - timedelta(minutes=5))
    fake_twilio.end_call(sid, status, ended_at=utcnow() - ended_ago)
    return sid


def test_the_fake_lists_an_account_s_calls_page_by_page_as_twilio_does(hotline, fake_twilio):
    sids = {fake_twilio.add_call() for _ in range(5)}
    listed = list(hotline.workshop.twilio.list_calls(page_size=2))
    assert {c["sid"] for c in listed} == sids and len(listed) == 5
    assert all({"status", "start_time", "end_time"} <= set(c) for c in listed)
    assert len(fake_twilio.requests("GET")) == 3
    first = requests.get(f"{fake_twilio.api_base}/2010-04-01/Accounts/{fake_twilio.account_sid}/Calls.json",
                         params={"PageSize": 2}, auth=(fake_twilio.account_sid, fake_twilio.auth_token), timeout=5).json()
    assert first["page"] == 0 and len(first["calls"]) == 2 and "recordings" not in first
    assert first["next_page_uri"].startswith(f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Calls.json?")
    assert "PageToken=PA" in first["next_page_uri"]


def test_a_sweep_deletes_an_old_finished_call_nobody_heard_of_and_leaves_live_and_recent_ones(hotline, fake_twilio):
    orphan = _finished_call(fake_twilio, status="no-answer")
    going = fake_twilio.add_call(started_at=utcnow() - LONG_AGO)  # still in progress
    recent = _finished_call(fake_twilio, ended_ago=timedelta(minutes=1))  # its status callback may be on its way
    done = sweep_twilio(hotline.workshop)
    calls = fake_twilio.calls
    assert calls[orphan].deleted and not calls[going].deleted and not calls[recent].deleted
    assert done["call deleted"] == 1 and done["call still going"] == 1 and done["call too recent"] == 1
    assert not fake_twilio.requests("DELETE", call_sid=going) and not fake_twilio.requests("DELETE", call_sid=recent)


def test_a_sweep_makes_the_job_of_a_known_finished_call_that_has_none(hotline, fake_twilio):
    call_sid = _finished_call(fake_twilio)
    with hotline.db.session() as session:
        _desk(session, hotline).start_call(call_sid)  # its status callback never came
        session.commit()
    done = sweep_twilio(hotline.workshop)
    assert done["call job queued"] == 1 and not fake_twilio.requests("DELETE", call_sid=call_sid)
    with hotline.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.kind == "delete-call")) == 1
    assert sweep_twilio(hotline.workshop)["call has its job"] == 1  # made once
    run_until_idle(hotline.workshop)
    assert fake_twilio.calls[call_sid].deleted


def test_a_call_twilio_will_not_delete_yet_leaves_the_sweep_working(hotline, fake_twilio, captured_logs):
    fake_twilio.call_final_after = 10 ** 9
    not_final = _finished_call(fake_twilio)
    orphan = _old(fake_twilio)
    done = sweep_twilio(hotline.workshop)
    assert done["call not final"] == 1 and done["deleted"] == 1 and "call failed" not in done
    assert not fake_twilio.calls[not_final].deleted and orphan not in fake_twilio.recordings
    assert not any(r.levelname == "WARNING" and "sweep" in r.getMessage() for r in captured_logs.records)
    fake_twilio.make_final(not_final)
    assert sweep_twilio(hotline.workshop)["call deleted"] == 1


def test_an_unknown_call_with_a_recording_left_goes_once_the_recording_is_deleted(hotline, fake_twilio):
    call_sid = _finished_call(fake_twilio)
    recording = _old(fake_twilio, call_sid=call_sid)
    sweep_twilio(hotline.workshop)  # recordings first, then the call
    assert recording not in fake_twilio.recordings and fake_twilio.calls[call_sid].deleted


def test_a_failure_to_list_one_does_not_stop_the_other(hotline, fake_twilio, captured_logs):
    orphan_call, orphan_recording = _finished_call(fake_twilio), _old(fake_twilio)
    fake_twilio.fail_next("GET", "/Calls.json", status=503)
    sweep_twilio(hotline.workshop)
    assert orphan_recording not in fake_twilio.recordings and not fake_twilio.calls[orphan_call].deleted
    fake_twilio.fail_next("GET", "/Recordings.json", status=503)
    sweep_twilio(hotline.workshop)
    assert fake_twilio.calls[orphan_call].deleted
    warnings = [r.getMessage() for r in captured_logs.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and not any(re.search(r"(CA|RE)[0-9a-f]{32}", w) for w in warnings)
