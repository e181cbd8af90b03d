"""The line writes its TwiML as text (ivr/twiml.py). These check it, byte for byte, against what twilio's
own VoiceResponse writes for the same reply, for every kind of verb and for any text a prompt, a take's
id or a number may hold."""
from __future__ import annotations

from hypothesis import given, settings as hypothesis_settings, strategies as st
from twilio.twiml.voice_response import Gather as TwimlGather
from twilio.twiml.voice_response import VoiceResponse

from ivr import prompts
from ivr.flow import CallFlow
from ivr.reply import Dial, Gather, Hangup, Pause, Play, Record, Redirect, Reply, Say
from ivr.twiml import RECORDING_STATUS_PATH, TwimlRenderer

BASE = "https://hotline.example.org/base"


def twilio_s_twiml(reply: Reply, base: str = BASE) -> str:
    """The same reply through twilio's classes, as ivr/twiml.py built it before it wrote text itself."""
    renderer = TwimlRenderer(base)
    base = base.rstrip("/")
    response = VoiceResponse()

    def said(parent, verb) -> None:
        if isinstance(verb, Pause):
            parent.pause(length=verb.seconds)
        elif isinstance(verb, Play):
            parent.play(f"{base}{verb.path}")
        else:
            parent.say(verb.text, voice=prompts.VOICE, language=prompts.LANGUAGE)

    for verb in reply.verbs:
        if isinstance(verb, (Say, Pause, Play)):
            said(response, verb)
        elif isinstance(verb, Gather):
            options = dict(input="dtmf", action=renderer.step_url(verb.step, verb.attempt, verb.take), method="POST",
                           timeout=verb.timeout, action_on_empty_result=False)
            if verb.num_digits is not None:
                options["num_digits"] = verb.num_digits
            if verb.finish_on_key:
                options["finish_on_key"] = verb.finish_on_key
            gather = TwimlGather(**options)
            for prompt in verb.prompts:
                said(gather, prompt)
            response.append(gather)
        elif isinstance(verb, Record):
            response.record(action=renderer.step_url(verb.step, verb.attempt), method="POST", max_length=verb.max_length,
                            finish_on_key=verb.finish_on_key, timeout=verb.timeout, play_beep=True, trim="trim-silence",
                            recording_status_callback=f"{base}{RECORDING_STATUS_PATH}",
                            recording_status_callback_method="POST", recording_status_callback_event="completed absent")
        elif isinstance(verb, Redirect):
            response.redirect(renderer.step_url(verb.step, verb.attempt, verb.take), method="POST")
        elif isinstance(verb, Dial):
            options = dict(caller_id=verb.caller_id, timeout=verb.timeout)
            if verb.step:
                options.update(action=renderer.step_url(verb.step), method="POST")
            response.dial(verb.number, **options)
        elif isinstance(verb, Hangup):
            response.hangup()
    return str(response)


# Any text, XML's specials and line breaks among it; steps as the flow names them, and any other.
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40) | st.sampled_from(
    ['a & b < c > d "e" \'f\'', "line\nbreak\r\ttab", "", "’ café — ☎", "]]>", "&amp;"])
steps = st.sampled_from(sorted(CallFlow.STEPS)) | st.sampled_from(['a"b', "x&y<z>", "tab\tline\nend\r"]) | st.text(min_size=1, max_size=12)
takes = st.none() | st.text(max_size=20) | st.just("RE" + "0123456789abcdef" * 2)
attempts = st.integers(min_value=1, max_value=5)
said = st.builds(Say, texts) | st.builds(Pause, st.integers(0, 10)) | st.builds(Play, st.sampled_from(["/ivr/q/1.wav", "/a&b?c=<d>"]))
verbs = (
    said
    | st.builds(Gather, steps, st.lists(said, max_size=3).map(tuple), st.none() | st.integers(1, 20),
                st.sampled_from(["", "#", "*"]), st.integers(1, 15), attempts, takes)
    | st.builds(Record, steps, st.integers(1, 900), st.sampled_from(["#", "", "*"]), st.integers(1, 20), attempts)
    | st.builds(Redirect, steps, attempts, takes)
    | st.builds(Dial, st.sampled_from(["+442079460000", "<&>"]), st.sampled_from(["+448000000000", '"&<>\n']), st.integers(5, 60),
                st.none() | steps)
    | st.just(Hangup())
)


@hypothesis_settings(max_examples=400, deadline=None)
@given(st.lists(verbs, max_size=5).map(tuple))
def test_a_reply_is_written_as_twilio_s_own_classes_write_it(verbs):
    reply = Reply(verbs)
    assert TwimlRenderer(BASE).render(reply) == twilio_s_twiml(reply)


def test_every_kind_of_verb_at_once_and_an_empty_reply():
    reply = Reply.of(
        Say(prompts.SOMETHING_WENT_WRONG), Pause(2), Play("/ivr/question/3.wav?t=x&y"),
        Gather("anonymity", (Say("To stay anonymous, press 1."), Pause()), attempt=2, take="RE1"),
        Gather("reference", (), num_digits=None, finish_on_key="#", timeout=10),
        Record("recorded", 600), Redirect("welcome", 3), Dial("+442079460000", "+448000000000", step="handover"),
        Dial("+442079460000", "+448000000000"), Hangup(),
    )
    written = TwimlRenderer(BASE + "/").render(reply)
    assert written == twilio_s_twiml(reply)
    assert written.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Say language="en-GB"')
    assert f'action="{BASE}/ivr/anonymity?try=2&amp;take=RE1"' in written and written.endswith("<Hangup /></Response>")
    assert TwimlRenderer(BASE).render(Reply()) == twilio_s_twiml(Reply()) == '<?xml version="1.0" encoding="UTF-8"?><Response />'
