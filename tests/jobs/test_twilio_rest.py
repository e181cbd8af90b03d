"""Our calls to Twilio's REST API, against the fake over real HTTP."""
from __future__ import annotations

import pytest

from jobs.twilio_rest import TwilioUnavailable
from tests.support.audio import phone_wav


def test_deleting_a_recording_twilio_no_longer_has_is_done(hotline, fake_twilio):
    """A worker that died between Twilio's delete and its commit deletes again when its job runs again."""
    sid, _ = fake_twilio.add_recording(phone_wav(0.5))
    hotline.workshop.twilio.delete_recording(sid)
    hotline.workshop.twilio.delete_recording(sid)
    assert [request.status for request in fake_twilio.requests("DELETE", sid)] == [204, 404]


def test_a_delete_twilio_fails_is_to_be_tried_again(hotline, fake_twilio):
    sid, _ = fake_twilio.add_recording(phone_wav(0.5))
    fake_twilio.fail_next("DELETE", sid, status=503)
    with pytest.raises(TwilioUnavailable) as failure:
        hotline.workshop.twilio.delete_recording(sid)
    assert sid not in str(failure.value) and sid in fake_twilio.recordings
