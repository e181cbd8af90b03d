"""Jobs that gave up are not left for someone to notice: a warning, and /healthz names them."""
from __future__ import annotations

from sqlalchemy import select

from jobs.recording import run_job
from jobs.sweep import sweep_twilio
from storage.models import Job
from tests.support.audio import phone_wav
from tests.support.takes import recorded_take


def _give_up(hotline, fake_twilio) -> tuple[int, str]:
    _, sid = recorded_take(hotline, fake_twilio, phone_wav(0.5))
    fake_twilio.fail_next("GET", sid, status=500, times=100)
    for _ in range(hotline.settings.job_max_attempts):
        run_job(hotline.workshop)
    with hotline.db.session() as session:
        job = session.scalar(select(Job))
        assert job.state == "failed"
        return job.id, sid


def test_healthz_is_plainly_ok_when_nothing_has_failed(app):
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "failed_jobs": 0, "failed": []}


def test_healthz_names_jobs_that_gave_up_and_nothing_of_the_call(app, hotline, fake_twilio):
    job_id, sid = _give_up(hotline, fake_twilio)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200  # the line itself still works: see app.py for why not 503
    body = response.get_json()
    assert body["status"] == "jobs-failed" and body["database"] == "ok" and body["failed_jobs"] == 1
    assert body["failed"] == [{"id": job_id, "kind": "store-recording", "attempts": hotline.settings.job_max_attempts}]
    assert sid not in response.get_data(as_text=True)


def test_a_job_that_gives_up_and_every_sweep_after_it_log_a_warning(hotline, fake_twilio, captured_logs):
    job_id, sid = _give_up(hotline, fake_twilio)
    gave_up = [r for r in captured_logs.records if r.levelname == "WARNING" and "gave up" in r.getMessage()]
    assert gave_up and "jobs retry" in gave_up[-1].getMessage()
    captured_logs.clear()
    sweep_twilio(hotline.workshop)
    alerts = [r.getMessage() for r in captured_logs.records if r.levelname == "WARNING" and "gave up" in r.getMessage()]
    assert alerts and f"{job_id}" in alerts[0] and sid not in alerts[0]
