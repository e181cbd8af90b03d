"""Signed webhook requests for view tests, signed with twilio's own RequestValidator as Twilio does."""
from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET

from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL

VERBS = {"Say", "Pause", "Gather", "Record", "Redirect", "Dial", "Hangup"}
GATHER_CHILDREN = {"Say", "Pause"}
ATTRIBUTES = {
    "Say": {"voice", "language"},
    "Pause": {"length"},
    "Gather": {"action", "method", "input", "numDigits", "finishOnKey", "timeout", "actionOnEmptyResult"},
    "Record": {
        "action", "method", "maxLength", "finishOnKey", "timeout", "playBeep", "trim",
        "recordingStatusCallback", "recordingStatusCallbackMethod", "recordingStatusCallbackEvent",
    },
    "Redirect": {"method"},
    "Dial": {"action", "method", "callerId", "timeout"},  # the handover: nothing that carries the caller
    "Hangup": set(),
}


def call_params(call_sid: str, caller: str = "+447700900123", **extra: str) -> dict[str, str]:
    params = {
        "AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": call_sid, "CallStatus": "in-progress",
        "Direction": "inbound", "From": caller, "Caller": caller, "To": "+448000000000", "Called": "+448000000000",
        "FromCountry": "GB", "CallerCountry": "GB",
    }
    params.update(extra)
    return params


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


class SignedTwilio:
    def __init__(self, client, auth_token: str):
        self.client = client
        self.auth_token = auth_token

    def signature(self, url: str, params) -> str:
        return RequestValidator(self.auth_token).compute_signature(url, params)

    def post(self, path: str, params, *, signed_url: str | None = None, signature: str | None = None,
             base_url: str = "http://10.0.0.5:8000"):
        """POST as Twilio would; the request reaches Flask at an internal address behind a proxy."""
        form = params if isinstance(params, MultiDict) else MultiDict(params)
        url = signed_url or PUBLIC_BASE_URL + path
        headers = {}
        if signature is not False:
            headers["X-Twilio-Signature"] = signature or self.signature(url, form)
        return self.client.post(path, data=form, headers=headers, base_url=base_url)


def check_twiml(body: str) -> ET.Element:
    """Allow-listed verbs, nesting and attributes; every action an absolute URL of this hotline."""
    root = ET.fromstring(body)
    assert root.tag == "Response"
    for verb in root:
        assert verb.tag in VERBS, verb.tag
        _check_verb(verb)
        if verb.tag == "Gather":
            assert len(verb) > 0
            for child in verb:
                assert child.tag in GATHER_CHILDREN, child.tag
                _check_verb(child)
        else:
            assert len(verb) == 0, f"{verb.tag} may not nest verbs"
    return root


def _check_verb(verb: ET.Element) -> None:
    assert set(verb.attrib) <= ATTRIBUTES[verb.tag], (verb.tag, verb.attrib)
    if verb.tag == "Say":
        assert verb.attrib == {"voice": "Polly.Amy", "language": "en-GB"}
        assert verb.text and verb.text.strip()
    if verb.tag in ("Gather", "Record"):
        assert verb.attrib["action"].startswith(PUBLIC_BASE_URL + "/ivr/")
        assert verb.attrib["method"] == "POST"
    if verb.tag == "Record":
        assert verb.attrib["recordingStatusCallback"] == PUBLIC_BASE_URL + "/ivr/recording-status"
        assert verb.attrib["recordingStatusCallbackEvent"] == "completed absent"
        assert verb.attrib["finishOnKey"] == "#*" and verb.attrib["playBeep"] == "true"  # * also ends the call
        assert verb.attrib["trim"] == "trim-silence"
    if verb.tag == "Redirect":
        assert verb.text.startswith(PUBLIC_BASE_URL + "/ivr/")
    if verb.tag == "Dial":
        assert verb.attrib["action"] == PUBLIC_BASE_URL + "/ivr/handover-ended" and verb.attrib["callerId"]
