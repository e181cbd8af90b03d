"""Turns the flow's Reply into TwiML, with every action an absolute URL under PUBLIC_BASE_URL.

Written as text here, element by element, the way twilio's VoiceResponse writes it (attributes sorted,
an empty element closed with " />", ElementTree's escaping): the same bytes, which
tests/ivr/test_twiml.py checks against twilio's own for every kind of verb. Built through twilio's
classes and ElementTree, a reply cost more CPU than the call flow and its SQL together.
"""
from __future__ import annotations

from urllib.parse import urlencode

from ivr import prompts
from ivr.reply import Dial, Gather, Hangup, Pause, Play, Record, Redirect, Reply, Say

RECORDING_STATUS_PATH = "/ivr/recording-status"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attribute(value) -> str:
    value = str(value).lower() if isinstance(value, bool) else str(value)
    return (_text(value).replace('"', "&quot;").replace("\r", "&#13;").replace("\n", "&#10;")
            .replace("\t", "&#09;"))


def element(name: str, attributes: dict | None = None, inner: str = "") -> str:
    """One element: its attributes (None left out) in sorted order, its escaped text or child elements."""
    head = name + "".join(f' {key}="{_attribute(value)}"' for key, value in sorted((attributes or {}).items())
                          if value is not None)
    return f"<{head}>{inner}</{name}>" if inner else f"<{head} />"


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
        return XML_DECLARATION + element("Response", None, "".join(self._verb(verb) for verb in reply.verbs))

    def _said(self, verb: Say | Pause | Play) -> str:
        if isinstance(verb, Pause):
            return element("Pause", {"length": verb.seconds})
        if isinstance(verb, Play):
            return element("Play", None, _text(f"{self.base}{verb.path}"))
        return element("Say", {"voice": prompts.VOICE, "language": prompts.LANGUAGE}, _text(verb.text))

    def _verb(self, verb) -> str:
        if isinstance(verb, (Say, Pause, Play)):
            return self._said(verb)
        if isinstance(verb, Gather):
            return element("Gather", {
                "input": "dtmf",
                "action": self.step_url(verb.step, verb.attempt, verb.take),
                "method": "POST",
                "timeout": verb.timeout,
                "actionOnEmptyResult": False,
                "numDigits": verb.num_digits,
                "finishOnKey": verb.finish_on_key or None,
            }, "".join(self._said(prompt) for prompt in verb.prompts))
        if isinstance(verb, Record):
            return element("Record", {
                "action": self.step_url(verb.step, verb.attempt),
                "method": "POST",
                "maxLength": verb.max_length,
                "finishOnKey": verb.finish_on_key,
                "timeout": verb.timeout,
                "playBeep": True,
                "trim": "trim-silence",
                "recordingStatusCallback": f"{self.base}{RECORDING_STATUS_PATH}",
                "recordingStatusCallbackMethod": "POST",
                "recordingStatusCallbackEvent": "completed absent",
            })
        if isinstance(verb, Redirect):
            return element("Redirect", {"method": "POST"}, _text(self.step_url(verb.step, verb.attempt, verb.take)))
        if isinstance(verb, Dial):
            attributes = {"callerId": verb.caller_id, "timeout": verb.timeout}
            if verb.step:
                attributes.update(action=self.step_url(verb.step), method="POST")
            return element("Dial", attributes, _text(verb.number))
        if isinstance(verb, Hangup):
            return element("Hangup")
        raise TypeError(f"cannot render {type(verb).__name__}")
