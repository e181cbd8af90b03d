"""Prometheus scrapes the line on its private port: webhook latency by step, responses by status class,
the queue, job failures, transcription, unlock failures and calls refused; and nothing of a caller."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from twilio.request_validator import RequestValidator

import metrics
import observability
from jobs.worker import run_until_idle
from storage.models import Case
from tests.conftest import PUBLIC_BASE_URL
from tests.support.audio import phone_wav
from tests.support.processes import free_port, wait_until
from tests.support.takes import recorded_take
from tests.support.transcribers import FakeTranscriber
from tests.support.webhooks import SignedTwilio, call_params, new_call_sid

ROOT = Path(__file__).resolve().parents[1]
CALLER = "+447700900123"


def sample(text: str, name: str, **labels: str) -> float:
    """One series' value in a scrape (0 when it is absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(key) == value for key, value in labels.items()):
                return found.value
    return 0.0


@pytest.fixture
def served(settings):
    """The line's web process as `flask run` starts it, its metrics on a private port of their own."""
    from app import create_app

    address = ("127.0.0.1", free_port())
    app = create_app(settings.with_overrides(metrics_address=address), start_worker=True)
    app.config["TESTING"] = True
    scrape = lambda: requests.get(f"http://127.0.0.1:{address[1]}/metrics", timeout=5).text  # noqa: E731
    yield app, scrape
    observability.stop_serving(address)
    app.extensions["hotline"].dispatcher.stop()
    app.extensions["hotline"].db.dispose()


def test_a_scrape_counts_the_calls_and_their_failures_and_names_no_caller(served, settings, fake_twilio):
    app, scrape = served
    hotline = app.extensions["hotline"]
    twilio = SignedTwilio(app.test_client(), settings.twilio_auth_token)
    before = scrape()

    call_sid = new_call_sid()
    assert twilio.post("/ivr/voice", call_params(call_sid, caller=CALLER)).status_code == 200
    twilio.post("/ivr/welcome", call_params(call_sid, caller=CALLER, Digits="2"))  # add to a report
    twilio.post("/ivr/reference", call_params(call_sid, caller=CALLER, Digits="12345674"))
    twilio.post("/ivr/pin", call_params(call_sid, caller=CALLER, Digits="999999"))  # wrong: an unlock failure
    assert twilio.post("/ivr/voice", call_params(call_sid), signature="forged").status_code == 403
    assert twilio.post("/ivr/no-such-step", call_params(call_sid)).status_code == 404
    metrics.call_refused("withheld")
    metrics.call_refused("+447700900123")  # not a reason: counted as the caller's bucket, never as a label
    recorded_take(hotline, fake_twilio, phone_wav(1.0), contact_number=CALLER)  # a take waiting for its job
    after = scrape()

    def more(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert more("hotline_webhook_seconds_count", step="voice") == 2
    assert more("hotline_webhook_seconds_count", step="pin") == 1
    assert more("hotline_http_responses_total", endpoint="ivr.voice", status_class="2xx") == 1
    assert more("hotline_http_responses_total", endpoint="ivr.voice", status_class="4xx") == 1
    assert more("hotline_http_responses_total", endpoint="ivr.step:other", status_class="4xx") == 1
    assert more("hotline_calls_refused_total", reason="withheld") == 1
    assert more("hotline_calls_refused_total", reason="caller") == 1
    assert sample(after, "hotline_unlock_failures_this_hour") >= 1
    assert sample(after, "hotline_jobs_due", kind="store-recording") == 1
    assert sample(after, "hotline_transcription_backlog") == 1
    assert sample(after, "hotline_database_up") == 1

    with hotline.db.session() as session:
        references = [reference for (reference,) in session.query(Case.reference)]
    for secret in ["7700900123", call_sid, *references, *fake_twilio.recordings]:
        assert secret not in after
    assert not re.search(r"\b(CA|RE)[0-9a-f]{32}\b|\+44|no-such-step", after)


def test_a_failing_webhook_and_job_are_counted_and_transcription_timed(served, settings, fake_twilio, monkeypatch):
    app, scrape = served
    hotline = app.extensions["hotline"]
    before = scrape()

    from ivr import flow

    def broken(self, event):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(flow.CallFlow, "welcome_choice", broken)
    twilio = SignedTwilio(app.test_client(), settings.twilio_auth_token)
    call_sid = new_call_sid()
    twilio.post("/ivr/voice", call_params(call_sid))
    apology = twilio.post("/ivr/welcome", call_params(call_sid, Digits="1"))
    assert apology.status_code == 200  # the caller hears the apology, Twilio sees no 5xx ...

    _, sid = recorded_take(hotline, fake_twilio, phone_wav(2.0))
    fake_twilio.fail_next("GET", sid, status=500)
    hotline.workshop.transcriber = FakeTranscriber()
    run_until_idle(hotline.workshop)  # the fetch fails once, is retried at once (no backoff in tests), then stored
    after = scrape()

    def more(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert more("hotline_webhook_failures_total", endpoint="ivr.step:welcome") == 1  # ... and the failure is counted
    assert more("hotline_job_runs_total", kind="store-recording", outcome="retry") == 1
    assert more("hotline_job_runs_total", kind="store-recording", outcome="done") == 1
    assert more("hotline_transcriptions_total") == 1
    assert more("hotline_transcription_audio_seconds_total") == pytest.approx(2.0, abs=0.1)
    assert more("hotline_transcription_real_time_factor_count") == 1
    assert sample(after, "hotline_transcription_backlog") == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the database's part is tested above, on both
def test_under_gunicorn_the_master_serves_every_worker_s_counts(settings, settings_env):
    """The Procfile's web process, two workers: each counts in its own files, the master sums them."""
    port, metrics_port = free_port(), free_port()
    env = {**settings_env, "HOTLINE_WORKER": "off", "HOTLINE_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
           "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
               "--workers", "2", "--threads", "2", "--no-control-socket", "app:create_app(start_worker=True)"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    validator = RequestValidator(settings.twilio_auth_token)
    try:
        def up() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=1).status_code == 200 \
                    and requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        if not wait_until(up, timeout=90):  # two workers starting on a loaded 2-core machine can take a while
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            pytest.fail("gunicorn did not come up: " + server.stderr.read().decode()[-2000:])
        calls = 12
        for _ in range(calls):
            params = call_params(new_call_sid())
            signature = validator.compute_signature(PUBLIC_BASE_URL + "/ivr/voice", params)
            response = requests.post(f"http://127.0.0.1:{port}/ivr/voice", data=params, timeout=5,
                                     headers={"X-Twilio-Signature": signature, "Connection": "close"})
            assert response.status_code == 200
        text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    finally:
        server.terminate()
        try:
            _, errors = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # a slow goodbye is not what this test is about; leave nothing behind
            os.killpg(server.pid, signal.SIGKILL)
            _, errors = server.communicate()
    assert sample(text, "hotline_webhook_seconds_count", step="voice") == calls, errors.decode()[-2000:]
    assert sample(text, "hotline_http_responses_total", endpoint="ivr.voice", status_class="2xx") == calls
    assert sample(text, "hotline_database_up") == 1  # the master reads the database's figures itself
    assert "7700900123" not in text
