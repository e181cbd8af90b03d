"""Turns the flow's Reply into TwiML, with every action an absolute URL under PUBLIC_BASE_URL."""
from __future__ import annotations

from urllib.parse import urlencode

from twilio.twiml.voice_response import Gather as TwimlGather
from twilio.twiml.voice_response import VoiceResponse

from ivr import prompts
from ivr.reply import Dial, Gather, Hangup, Pause, Play, Record, Redirect, Reply, Say

RECORDING_STATUS_PATH = "/ivr/recording-status"


class TwimlRenderer:
    def __init__(self, public_base_url: str):
        self.base = public_base_url.rstrip("/")

    def step_url(self, step: str, attempt: int = 1, take: str | None = None) -> str:
        query = {}
        if attempt > 1:
            query["try"] = str(attempt)
        if take:
            query["take"] = take
        return f"{self.base}/ivr/{step}" + (f"?{urlencode(query)}" if query else "")

    def render(self, reply: Reply) -> str:
        response = VoiceResponse()
        for verb in reply.verbs:
            self._add(response, verb)
        return str(response)

    def _say(self, parent, verb: Say | Pause | Play) -> None:
        if isinstance(verb, Pause):
            parent.pause(length=verb.seconds)
        elif isinstance(verb, Play):
            parent.play(f"{self.base}{verb.path}")
        else:
            parent.say(verb.text, voice=prompts.VOICE, language=prompts.LANGUAGE)

    def _add(self, response: VoiceResponse, verb) -> None:
        if isinstance(verb, (Say, Pause, Play)):
            self._say(response, verb)
        elif isinstance(verb, Gather):
            options = dict(
                input="dtmf",
                action=self.step_url(verb.step, verb.attempt, verb.take),
                method="POST",
                timeout=verb.timeout,
                action_on_empty_result=False,
            )
            if verb.num_digits is not None:
                options["num_digits"] = verb.num_digits
            if verb.finish_on_key:
                options["finish_on_key"] = verb.finish_on_key
            gather = TwimlGather(**options)
            for prompt in verb.prompts:
                self._say(gather, prompt)
            response.append(gather)
        elif isinstance(verb, Record):
            response.record(
                action=self.step_url(verb.step, verb.attempt),
                method="POST",
                max_length=verb.max_length,
                finish_on_key=verb.finish_on_key,
                timeout=verb.timeout,
                play_beep=True,
                trim="trim-silence",
                recording_status_callback=f"{self.base}{RECORDING_STATUS_PATH}",
                recording_status_callback_method="POST",
                recording_status_callback_event="completed absent",
            )
        elif isinstance(verb, Redirect):
            response.redirect(self.step_url(verb.step, verb.attempt, verb.take), method="POST")
        elif isinstance(verb, Dial):
            options = dict(caller_id=verb.caller_id, timeout=verb.timeout)
            if verb.step:
                options.update(action=self.step_url(verb.step), method="POST")
            response.dial(verb.number, **options)
        elif isinstance(verb, Hangup):
            response.hangup()
        else:
            raise TypeError(f"cannot render {type(verb).__name__}")
