"""The simulated call against the toy hotline, in-process through the Flask test client."""
import re

import pytest

from simulator import (
    WITHHELD_NUMBER, AppResponseError, SimulatorError, TwimlError, padded_wav, silence_wav, tone_wav,
)
from toy_hotline import WELCOME

VOICE_PARAMS = {
    "AccountSid", "ApiVersion", "CallSid", "CallStatus", "Called", "CalledCity", "CalledCountry", "CalledState",
    "CalledZip", "Caller", "CallerCity", "CallerCountry", "CallerState", "CallerZip", "Direction", "From", "FromCity",
    "FromCountry", "FromState", "FromZip", "To", "ToCity", "ToCountry", "ToState", "ToZip",
}
RECORDING_PARAMS = {
    "AccountSid", "CallSid", "RecordingSid", "RecordingUrl", "RecordingStatus", "RecordingDuration",
    "RecordingChannels", "RecordingSource", "RecordingStartTime", "ErrorCode",
}


def twiml(*verbs):
    return "<Response>" + "".join(verbs) + "</Response>"


def kinds(call):
    return [exchange.kind for exchange in call.exchanges]


# ------------------------------------------------------------------ arriving, signing, parameters


def test_dial_posts_the_full_voice_parameters_signed_for_the_public_url(sim, toy, credentials):
    call = sim.dial(from_="+447700900123")
    assert call.hears("immediate danger")
    assert call.waiting_for == "keys"
    [first] = toy.on("/ivr/voice")
    assert first.signature_ok and not toy.bad_signatures
    assert first.url == "https://hotline.example.org/ivr/voice"  # request.url is the public URL
    assert VOICE_PARAMS <= set(first.params)
    assert first.params["CallStatus"] == "ringing"
    assert first.params["Direction"] == "inbound"
    assert first.params["AccountSid"] == credentials[0]
    assert re.fullmatch(r"CA[0-9a-f]{32}", first.params["CallSid"]) and first.params["CallSid"] == call.call_sid
    assert first.params["From"] == first.params["Caller"] == "+447700900123"
    assert first.params["FromCountry"] == "GB" and first.params["FromCity"] == ""
    assert first.headers["I-Twilio-Idempotency-Token"]
    assert call.last_document.names() == ["Gather", "Say", "Redirect"]


def test_optional_caller_parameters_and_withheld_number(sim, toy):
    sim.dial(from_=WITHHELD_NUMBER, caller_name="JANE DOE", forwarded_from="+441632960999")
    params = toy.on("/ivr/voice")[0].params
    assert params["From"] == WITHHELD_NUMBER and params["FromCountry"] == "LS"
    assert params["CallerName"] == "JANE DOE" and params["ForwardedFrom"] == "+441632960999"


def test_later_requests_say_in_progress_and_keep_the_call_sid(sim, toy):
    call = sim.dial()
    call.presses("9")
    menu = toy.on("/ivr/menu")[0].params
    assert menu["CallStatus"] == "in-progress" and menu["CallSid"] == call.call_sid
    assert menu["Digits"] == "9" and menu["FinishedOnKey"] == "" and menu["msg"] == "Gather End"


# ------------------------------------------------------------------ Gather


def test_no_input_falls_through_to_the_next_verb_without_calling_the_action(sim, toy):
    call = sim.dial()
    call.waits()
    assert toy.on("/ivr/menu") == []
    assert call.hears("did not receive a choice")
    assert kinds(call) == ["voice", "redirect"]
    call.waits()  # the retry document ends after "Goodbye.": end of TwiML hangs up
    assert call.hears("goodbye") and call.is_over and call.ended_by == "hotline"
    assert "HOTLINE hangs up (end of TwiML)" in call.transcript


def test_pressing_follows_the_action_and_get_redirect_with_query(sim, toy):
    call = sim.dial()
    call.presses("2")
    assert call.hears("independent hotline") and call.hears("Thank you for calling")
    [about] = toy.on("/ivr/about")
    assert about.method == "GET" and about.signature_ok
    assert about.params["lang"] == "en" and about.params["CallSid"] == call.call_sid
    assert call.is_over and call.ended_by == "hotline"


def test_hears_only_what_was_said_since_the_last_action(sim):
    call = sim.dial()
    call.presses("9")
    assert call.hears("not an option")
    assert call.hears("immediate danger")  # the menu again, after the redirect
    call.presses("2")
    assert not call.hears("not an option")
    assert call.heard.count(WELCOME) == 2


def gather_call(sim, toy, gather, after="<Say>Nothing pressed.</Say>"):
    toy.serve("got", twiml("<Say>Got it.</Say><Hangup/>"))
    path = toy.serve("gather", twiml(gather.format(action="/ivr/t/got"), after))
    return sim.dial(voice_path=path)


def test_finish_on_key_ends_the_gather_and_is_not_submitted(sim, toy):
    call = gather_call(sim, toy, '<Gather action="{action}"><Say>Code then hash.</Say></Gather>')
    call.presses("123#")
    got = toy.on("/ivr/t/got")[0].params
    assert got["Digits"] == "123" and got["FinishedOnKey"] == "#"
    assert call.hears("got it")


def test_digits_without_finish_key_are_submitted_after_the_timeout(sim, toy):
    call = gather_call(sim, toy, '<Gather action="{action}" timeout="7"><Say>Code.</Say></Gather>')
    before = call.clock
    call.presses("42")
    assert toy.on("/ivr/t/got")[0].params["Digits"] == "42"
    assert call.clock - before >= 7


def test_only_the_finish_key_counts_as_no_input(sim, toy):
    call = gather_call(sim, toy, '<Gather action="{action}"><Say>Code.</Say></Gather>')
    call.presses("#")
    assert toy.on("/ivr/t/got") == [] and call.hears("nothing pressed")


def test_action_on_empty_result_posts_empty_digits(sim, toy):
    call = gather_call(sim, toy, '<Gather action="{action}" actionOnEmptyResult="true"><Say>Code.</Say></Gather>')
    call.waits()
    assert toy.on("/ivr/t/got")[0].params["Digits"] == ""
    assert not call.hears("nothing pressed")


def test_default_action_is_the_current_document(sim, toy):
    call = gather_call(sim, toy, '<Gather numDigits="1"><Say>Again?</Say></Gather>')
    call.presses("5")
    assert [r.params.get("Digits") for r in toy.on("/ivr/t/gather")] == [None, "5"]


def test_keys_beyond_num_digits_are_refused(sim):
    call = sim.dial()
    with pytest.raises(SimulatorError, match="separate presses"):
        call.presses("12")


def test_actions_the_twiml_does_not_allow_are_refused(sim):
    call = sim.dial()
    with pytest.raises(SimulatorError, match="no <Record> is running"):
        call.says(tone_wav(1))
    with pytest.raises(SimulatorError, match="keypad"):
        call.presses("A")
    call.hangs_up()
    assert call.is_over and call.ended_by == "caller"
    with pytest.raises(SimulatorError, match="call is over"):
        call.presses("1")
    with pytest.raises(SimulatorError, match="call is over"):
        call.waits()
    with pytest.raises(SimulatorError, match="already been dialled"):
        call.dial()


def test_speech_only_gather_does_not_take_keys(sim, toy):
    call = gather_call(sim, toy, '<Gather input="speech" action="{action}"><Say>Say it.</Say></Gather>')
    with pytest.raises(SimulatorError, match="does not listen for keys"):
        call.presses("1")


# ------------------------------------------------------------------ Record


def test_recording_posts_the_action_then_the_status_callback(sim, toy, fake_twilio, credentials):
    call = sim.dial()
    call.presses("1")
    assert call.hears("after the beep") and call.waiting_for == "recording"
    wav = tone_wav(2.0)
    call.says(wav, then="#")
    assert kinds(call)[-3:] == ["record-action", "recording-status", "call-status"]
    [sid] = call.recording_sids
    assert re.fullmatch(r"RE[0-9a-f]{32}", sid)
    action = toy.on("/ivr/recorded")[0].params
    assert action["RecordingSid"] == sid and action["Digits"] == "#" and action["RecordingDuration"] == "2"
    assert action["RecordingUrl"] == fake_twilio.recording_url(sid) and action["CallStatus"] == "in-progress"
    assert VOICE_PARAMS <= set(action)
    status = toy.on("/ivr/recording-status")[0].params
    assert set(status) == RECORDING_PARAMS
    assert status["RecordingStatus"] == "completed" and status["ErrorCode"] == "0"
    assert status["RecordingSource"] == "RecordVerb" and status["RecordingChannels"] == "1"
    assert status["AccountSid"] == credentials[0] and status["CallSid"] == call.call_sid
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000", status["RecordingStartTime"])
    assert fake_twilio.recordings[sid].wav == wav
    assert call.hears("report is saved") and call.is_over
    assert not toy.bad_signatures


def test_recording_callback_can_come_before_the_action(sim, toy):
    call = sim.dial(recording_callback_first=True)
    call.presses("1")
    call.says(tone_wav(1.0), then="#")
    assert kinds(call)[-4:] == ["gather-action", "recording-status", "record-action", "call-status"]
    call = sim.dial(recording_callback_first=True)
    call.presses("1")
    call.says(tone_wav(1.0), then="hangup")
    assert kinds(call)[-3:] == ["recording-status", "record-action", "call-status"]


def test_hanging_up_mid_recording_sends_digits_hangup(sim, toy):
    call = sim.dial()
    call.presses("1")
    call.says(tone_wav(1.5), then="hangup")
    assert call.is_over and call.ended_by == "caller"
    action = toy.on("/ivr/recorded")[0].params
    assert action["Digits"] == "hangup" and action["CallStatus"] == "completed"
    assert kinds(call)[-3:] == ["record-action", "call-status", "recording-status"]
    assert not call.hears("report is saved")  # the caller is gone: that TwiML is not played


def test_status_callback_ends_every_call(sim, toy):
    call = sim.dial()
    call.hangs_up()
    [status] = toy.on("/ivr/status")
    assert status.params["CallStatus"] == "completed"
    assert status.params["CallDuration"] == str(call.duration) and int(status.params["CallDuration"]) >= 1
    assert status.params["CallbackSource"] == "call-progress-events"
    assert VOICE_PARAMS <= set(status.params)


def test_twilio_keeps_a_record_of_every_call_placed_until_it_is_deleted(sim, fake_twilio):
    call = sim.dial(from_="+447700900123")
    record = fake_twilio.calls[call.call_sid]
    assert record.status == "in-progress" and record.from_ == "+447700900123" and record.ended_at is None
    call.hangs_up()
    record = fake_twilio.calls[call.call_sid]
    assert record.status == "completed" and record.ended_at is not None and not record.deleted


def test_a_silent_recording_is_absent_and_skips_the_action(sim, toy, fake_twilio):
    call = sim.dial()
    call.presses("1")
    call.says(silence_wav(3.0), then="#")
    assert toy.on("/ivr/recorded") == []
    status = toy.on("/ivr/recording-status")[0].params
    assert status["RecordingStatus"] == "absent" and status["RecordingDuration"] == "0" and status["ErrorCode"] != "0"
    assert call.hears("did not get a recording")  # the verb after <Record>
    assert call.recording_sids == [] and fake_twilio.recordings == {}
    assert call.recordings[0].status == "absent"


@pytest.mark.parametrize("end", ["hangup", "#"])
def test_recording_nothing(sim, toy, end):
    call = sim.dial()
    call.presses("1")
    call.says_nothing(then=end)
    assert toy.on("/ivr/recorded") == []
    assert toy.on("/ivr/recording-status")[0].params["RecordingStatus"] == "absent"
    assert call.is_over == (end == "hangup")


def test_pressing_the_finish_key_at_once_is_an_empty_recording(sim, toy):
    call = sim.dial()
    call.presses("1")
    call.presses("#")
    assert toy.on("/ivr/recorded") == [] and call.hears("did not get a recording")


def test_waiting_at_a_record_ends_it_on_silence(sim, toy):
    call = sim.dial()
    call.presses("1")
    call.waits()
    assert toy.on("/ivr/recording-status")[0].params["RecordingStatus"] == "absent"


def test_silence_ending_omits_digits_and_trim_removes_padding(sim, toy):
    call = sim.dial()
    call.presses("1")
    call.says(padded_wav(tone_wav(2.0), before=2.0, after=2.0), then="silence")
    action = toy.on("/ivr/recorded")[0].params
    assert "Digits" not in action and action["RecordingDuration"] == "2"


def test_max_length_cuts_the_recording(sim, toy, fake_twilio):
    toy.serve("done", twiml("<Hangup/>"))
    path = toy.serve("rec", twiml('<Record maxLength="2" action="/ivr/t/done" trim="do-not-trim"/>'))
    call = sim.dial(voice_path=path)
    call.says(tone_wav(5.0), then="#")
    action = toy.on("/ivr/t/done")[0].params
    assert action["RecordingDuration"] == "2" and "Digits" not in action
    assert fake_twilio.recordings[action["RecordingSid"]].duration == 2


def test_finish_keys_of_the_record_are_enforced(sim, toy):
    path = toy.serve("rec", twiml('<Record finishOnKey="*" timeout="0"/>'))
    call = sim.dial(voice_path=path)
    with pytest.raises(SimulatorError, match="cannot end"):
        call.says(tone_wav(1.0), then="#")
    with pytest.raises(SimulatorError, match="no silence timeout"):
        call.says(tone_wav(1.0), then="silence")
    with pytest.raises(SimulatorError, match="would not end it"):
        call.presses("#")


def test_in_progress_recording_event(sim, toy):
    toy.serve("done", twiml("<Hangup/>"))
    path = toy.serve("rec", twiml('<Record action="/ivr/t/done" recordingStatusCallback="/ivr/recording-status" '
                                  'recordingStatusCallbackEvent="in-progress completed"/>'))
    call = sim.dial(voice_path=path)
    assert [r.params["RecordingStatus"] for r in toy.on("/ivr/recording-status")] == ["in-progress"]
    call.says(tone_wav(1.0))
    statuses = toy.on("/ivr/recording-status")
    assert [r.params["RecordingStatus"] for r in statuses] == ["in-progress", "completed"]
    assert statuses[0].params["RecordingSid"] == statuses[1].params["RecordingSid"] == call.recording_sids[0]


# ------------------------------------------------------------------ callback order and retries


def test_manual_callbacks_can_be_delivered_in_any_order(sim, toy):
    call = sim.dial(callbacks="manual")
    call.presses("1")
    call.says(tone_wav(1.0), then="hangup")
    assert [w.kind for w in call.pending] == ["record-action", "call-status", "recording-status"]
    assert toy.on("/ivr/recorded") == []
    call.deliver_callbacks_in_order("call-status", "recording-status", "record-action")
    assert [r.path for r in toy.received[-3:]] == ["/ivr/status", "/ivr/recording-status", "/ivr/recorded"]
    assert call.pending == []


def test_deliver_pending_reverse(sim, toy):
    call = sim.dial(callbacks="manual")
    call.presses("1")
    call.says(tone_wav(1.0), then="#")  # the action drives the call; only callbacks wait
    assert [w.kind for w in call.pending] == ["recording-status", "call-status"]
    call.deliver_pending(reverse=True)
    assert [r.path for r in toy.received[-2:]] == ["/ivr/status", "/ivr/recording-status"]


def test_resending_a_callback_repeats_it_exactly(sim, toy):
    call = sim.dial()
    call.presses("1")
    call.says(tone_wav(1.0))
    again = call.resend_last_recording_callback()
    assert again.attempt == 2 and again.status == 204
    first, second = toy.on("/ivr/recording-status")
    assert first.params == second.params
    assert first.headers["I-Twilio-Idempotency-Token"] == second.headers["I-Twilio-Idempotency-Token"]
    assert second.signature_ok
    call.resend_status_callback()
    assert len(toy.on("/ivr/status")) == 2


# ------------------------------------------------------------------ what Twilio would reject


def test_error_status_from_the_app_raises_in_strict_mode(sim, toy):
    path = toy.serve("boom", "oops", status=500, content_type="text/plain")
    with pytest.raises(AppResponseError, match="HTTP 500") as error:
        sim.dial(voice_path=path)
    assert error.value.exchange.status == 500


def test_lenient_mode_plays_twilios_application_error_and_hangs_up(sim, toy):
    path = toy.serve("boom", "oops", status=500, content_type="text/plain")
    call = sim.dial(voice_path=path, strict=False)
    assert call.is_over and call.ended_by == "error"
    assert call.hears("application error")
    assert call.exchanges[0].status == 500
    assert toy.on("/ivr/status")[0].params["CallStatus"] == "completed"


def test_bad_twiml_and_wrong_content_type_are_rejected(sim, toy):
    with pytest.raises(TwimlError, match="unknown TwiML verb"):
        sim.dial(voice_path=toy.serve("bad", twiml("<Speak>Hi</Speak>")))
    with pytest.raises(AppResponseError, match="Content-Type"):
        sim.dial(voice_path=toy.serve("plain", twiml("<Say>Hi</Say>"), content_type="text/plain"))
    with pytest.raises(TwimlError, match="not well-formed"):
        sim.dial(voice_path=toy.serve("json", '{"say": "hi"}'))


def test_urls_outside_the_public_base_are_refused(sim, toy):
    path = toy.serve("away", twiml("<Redirect>https://elsewhere.example.com/x</Redirect>"))
    with pytest.raises(SimulatorError, match="not under the app's public URL"):
        sim.dial(voice_path=path)


def test_redirect_loops_are_caught(sim, toy):
    path = toy.serve("loop", twiml("<Redirect>/ivr/t/loop</Redirect>"))
    with pytest.raises(SimulatorError, match="Redirect> loop"):
        sim.dial(voice_path=path)


def test_empty_response_hangs_up(sim, toy):
    call = sim.dial(voice_path=toy.serve("empty", "<Response/>"))
    assert call.is_over and call.ended_by == "hotline"


# ------------------------------------------------------------------ low-level posting


def test_post_signed_forged_and_unsigned(sim, toy):
    call = sim.dial()
    assert call.post("/ivr/status", {"CallStatus": "completed"}).status == 204
    assert toy.received[-1].signature_ok and toy.received[-1].params["CallSid"] == call.call_sid
    assert call.post("/ivr/status", signature="forged").status == 403
    assert call.post("/ivr/status", signed=False).status == 403
    assert call.post("/ivr/status", auth_token="0" * 32).status == 403
    assert call.post("/ivr/voice", method="GET", call_params=False).status == 405


def test_new_call_can_post_before_dialling(sim, toy):
    call = sim.new_call()
    assert call.post("/ivr/voice").status == 200
    assert toy.received[-1].params["CallStatus"] == "ringing"


def test_transcript_reads_like_a_conversation(sim):
    call = sim.dial()
    call.presses("1")
    call.says(tone_wav(1.0), then="hangup")
    text = call.transcript_text
    assert text.startswith("CALLER +447700900123 dials")
    assert "HOTLINE: Welcome to the hotline" in text
    assert "CALLER presses 1" in text and "HOTLINE [beep]" in text
    assert "CALLER records 1.0 s (hangs up)" in text


def test_used_verbs_lists_paths_and_attributes_for_allow_list_checks(sim):
    call = sim.dial()
    call.presses("1")
    call.says(tone_wav(1.0))
    used = call.used_verbs()
    assert used["Response/Gather"] == {"numDigits", "action", "timeout"}
    assert used["Response/Gather/Say"] == {"voice", "language"}
    assert "Response/Record" in used and "Response/Hangup" in used
    allowed = {"Response/Gather", "Response/Gather/Say", "Response/Say", "Response/Record", "Response/Redirect", "Response/Hangup"}
    assert set(used) <= allowed
