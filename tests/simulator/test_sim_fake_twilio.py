import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from simulator import FakeTwilio, tone_wav

WAV = tone_wav(1.0)


@pytest.fixture
def auth(fake_twilio):
    return fake_twilio.account_sid, fake_twilio.auth_token


def test_add_recording_gives_twilio_shaped_sid_and_url(fake_twilio):
    sid, url = fake_twilio.add_recording(WAV)
    assert re.fullmatch(r"RE[0-9a-f]{32}", sid)
    assert url == f"{fake_twilio.api_base}/2010-04-01/Accounts/{fake_twilio.account_sid}/Recordings/{sid}"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake_twilio.api_base)
    assert fake_twilio.recordings[sid].duration == 1


def test_recording_media_needs_basic_auth(fake_twilio, auth):
    sid, url = fake_twilio.add_recording(WAV)
    anonymous = requests.get(url)
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == 20003
    assert "Basic" in anonymous.headers["WWW-Authenticate"]
    assert requests.get(url, auth=(auth[0], "wrong-token")).status_code == 401
    assert requests.get(url, auth=("AC" + "0" * 32, auth[1])).status_code == 401
    assert all(not entry.authenticated for entry in fake_twilio.log)


def test_recording_media_is_served_as_wav_with_or_without_extension(fake_twilio, auth):
    sid, url = fake_twilio.add_recording(WAV)
    for address in (url, url + ".wav"):
        response = requests.get(address, auth=auth)
        assert response.status_code == 200
        assert response.content == WAV
        assert response.headers["Content-Type"] == "audio/x-wav"
    resource = requests.get(url + ".json", auth=auth).json()
    assert resource["sid"] == sid and resource["status"] == "completed" and resource["duration"] == "1"


def test_unknown_recording_and_foreign_account(fake_twilio, auth):
    response = requests.get(f"{fake_twilio.api_base}/2010-04-01/Accounts/{auth[0]}/Recordings/RE{'a' * 32}", auth=auth)
    assert response.status_code == 404 and response.json()["code"] == 20404
    sid, _ = fake_twilio.add_recording(WAV)
    foreign = f"{fake_twilio.api_base}/2010-04-01/Accounts/AC{'b' * 32}/Recordings/{sid}"
    assert requests.get(foreign, auth=auth).status_code == 403
    assert requests.get(f"{fake_twilio.api_base}/2010-04-01/Accounts/{auth[0]}/Conferences.json", auth=auth).status_code == 404


def test_delete_removes_the_recording(fake_twilio, auth):
    sid, url = fake_twilio.add_recording(WAV)
    other, other_url = fake_twilio.add_recording(WAV)
    assert requests.delete(url + ".json", auth=auth).status_code == 204
    assert requests.get(url, auth=auth).status_code == 404
    assert requests.delete(url + ".json", auth=auth).status_code == 404
    assert requests.delete(other_url, auth=auth).status_code == 204  # without .json too
    assert fake_twilio.recordings == {}
    assert fake_twilio.deleted == [sid, other]


def test_delete_needs_auth(fake_twilio, auth):
    sid, url = fake_twilio.add_recording(WAV)
    assert requests.delete(url + ".json").status_code == 401
    assert sid in fake_twilio.recordings


def test_request_log_records_order_and_status(fake_twilio, auth):
    sid, url = fake_twilio.add_recording(WAV)
    requests.get(url + ".wav", auth=auth)
    requests.delete(url + ".json", auth=auth)
    log = fake_twilio.requests(sid=sid)
    assert [(e.method, e.status) for e in log] == [("GET", 200), ("DELETE", 204)]
    assert log[0].monotonic <= log[1].monotonic
    assert fake_twilio.wait_for("DELETE", sid, status=204) == log[1]
    fake_twilio.clear_log()
    assert fake_twilio.log == []


def test_wait_for_times_out_with_the_log_in_the_message(fake_twilio):
    with pytest.raises(TimeoutError, match="no DELETE"):
        fake_twilio.wait_for("DELETE", timeout=0.1)


def test_fail_next_by_sid_then_recovers(fake_twilio, auth):
    sid, url = fake_twilio.add_recording(WAV)
    other, other_url = fake_twilio.add_recording(WAV)
    fake_twilio.fail_next("GET", sid, status=503, times=2)
    assert requests.get(other_url, auth=auth).status_code == 200  # another SID is unaffected
    assert requests.get(url, auth=auth).status_code == 503
    assert requests.get(url, auth=auth).status_code == 503
    assert requests.get(url, auth=auth).status_code == 200
    assert [e.injected for e in fake_twilio.requests(sid=sid)] == [True, True, False]


def test_fail_next_matches_method_and_regex(fake_twilio, auth):
    sid, url = fake_twilio.add_recording(WAV)
    fake_twilio.fail_next("DELETE", re.compile(r"Recordings/RE\w+\.json$"), status=500)
    assert requests.get(url, auth=auth).status_code == 200  # GET is not a DELETE
    assert requests.delete(url + ".json", auth=auth).status_code == 500
    assert sid in fake_twilio.recordings  # the failed delete did not delete
    fake_twilio.fail_next("*", "", status=429, body='{"code": 20429}')
    response = requests.get(url, auth=auth)
    assert response.status_code == 429 and response.json() == {"code": 20429}
    assert requests.delete(url + ".json", auth=auth).status_code == 204


def test_delay_next_slows_the_answer(fake_twilio, auth):
    _, url = fake_twilio.add_recording(WAV)
    fake_twilio.delay_next("GET", "Recordings", seconds=0.3)
    started = time.monotonic()
    assert requests.get(url, auth=auth).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    requests.get(url, auth=auth)
    assert time.monotonic() - started < 0.3


def test_concurrent_use_is_safe(fake_twilio, auth):
    def work(_):
        sid, url = fake_twilio.add_recording(WAV)
        got = requests.get(url, auth=auth).status_code
        gone = requests.delete(url + ".json", auth=auth).status_code
        return got, gone

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(40)))
    assert results == [(200, 204)] * 40
    assert fake_twilio.recordings == {} and len(fake_twilio.deleted) == 40 and len(fake_twilio.log) == 80


def test_context_manager_stops_the_server():
    with FakeTwilio() as fake:
        base = fake.api_base
        assert requests.get(base + "/").status_code == 401
    with pytest.raises(requests.ConnectionError):
        requests.get(base + "/", timeout=1)
    with pytest.raises(RuntimeError):
        fake.api_base


# --- call records -------------------------------------------------------------------------------

def _call_url(fake, sid: str) -> str:
    return f"{fake.api_base}/2010-04-01/Accounts/{fake.account_sid}/Calls/{sid}.json"


def test_a_call_record_is_kept_for_every_call_seen_and_served_as_twilio_does(fake_twilio, auth):
    sid = fake_twilio.add_call(from_="+447700900123", to="+448000850000")
    assert re.fullmatch(r"CA[0-9a-f]{32}", sid)
    resource = requests.get(_call_url(fake_twilio, sid), auth=auth).json()
    assert resource["sid"] == sid and resource["status"] == "in-progress" and resource["from"] == "+447700900123"
    fake_twilio.end_call(sid)
    assert requests.get(_call_url(fake_twilio, sid), auth=auth).json()["status"] == "completed"
    assert set(fake_twilio.calls) == {sid} and not fake_twilio.calls[sid].deleted
    assert requests.delete(_call_url(fake_twilio, sid)).status_code == 401  # Basic auth, as for recordings


def test_a_call_record_cannot_be_deleted_before_it_is_final(fake_twilio, auth):
    fake_twilio.call_final_after = 0.3  # seconds after the call ended (Twilio: a minute, up to 14 days)
    sid = fake_twilio.add_call()
    refused = requests.delete(_call_url(fake_twilio, sid), auth=auth)
    assert refused.status_code == 400 and refused.json()["code"] == 20009  # still in progress
    fake_twilio.end_call(sid)
    refused = requests.delete(_call_url(fake_twilio, sid), auth=auth)
    assert refused.status_code == 400 and refused.json()["code"] == 20009  # ended, not yet final
    assert "before it is complete" in refused.json()["message"]
    time.sleep(0.35)
    assert requests.delete(_call_url(fake_twilio, sid), auth=auth).status_code == 204
    assert requests.delete(_call_url(fake_twilio, sid), auth=auth).status_code == 404
    assert requests.get(_call_url(fake_twilio, sid), auth=auth).status_code == 404
    assert fake_twilio.calls[sid].deleted and fake_twilio.deleted_calls == [sid]
    assert [e.status for e in fake_twilio.requests("DELETE", call_sid=sid)] == [400, 400, 204, 404]


def test_a_call_record_is_never_deleted_while_its_recordings_exist(fake_twilio, auth):
    sid = fake_twilio.add_call()
    recording, url = fake_twilio.add_recording(WAV, call_sid=sid)
    fake_twilio.end_call(sid)
    refused = requests.delete(_call_url(fake_twilio, sid), auth=auth)
    assert refused.status_code == 400 and refused.json()["code"] == 20009
    assert requests.delete(url + ".json", auth=auth).status_code == 204
    assert requests.delete(_call_url(fake_twilio, sid), auth=auth).status_code == 204


def test_an_unknown_call_or_another_account_s(fake_twilio, auth):
    assert requests.delete(_call_url(fake_twilio, "CA" + "a" * 32), auth=auth).status_code == 404
    sid = fake_twilio.add_call()
    foreign = f"{fake_twilio.api_base}/2010-04-01/Accounts/AC{'b' * 32}/Calls/{sid}.json"
    assert requests.delete(foreign, auth=auth).status_code == 403
    assert not fake_twilio.calls[sid].deleted


def test_make_final_lets_a_test_skip_twilio_s_wait(fake_twilio, auth):
    fake_twilio.call_final_after = 3600
    sid = fake_twilio.add_call()
    fake_twilio.end_call(sid)
    assert requests.delete(_call_url(fake_twilio, sid), auth=auth).status_code == 400
    fake_twilio.make_final(sid)
    assert requests.delete(_call_url(fake_twilio, sid), auth=auth).status_code == 204
