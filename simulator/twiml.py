"""Parse and check TwiML as strictly as Twilio does.

Twilio rejects a document that is not XML, whose root is not <Response>, that uses a verb it does
not know, nests a verb where it may not go, or carries an attribute the verb does not have or a
value the attribute does not allow. The simulator raises TwimlError for all of these, so a test
fails where a real call would have played "an application error has occurred".

Only the verbs the hotline can use are executed (Say, Play, Pause, Gather, Record, Redirect,
Dial to a phone number, Hangup); other real Twilio verbs (Enqueue, Connect, ...) and Dial's other
nouns (Client, Sip, Conference, Queue) are recognised and refused as unsupported by the simulator,
rather than misreported as unknown.

The parsed document is exposed (``Document.verbs``, ``Document.walk()``) so tests can check that
the app only uses allow-listed verbs, nesting and attributes.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable, Iterator

from .errors import TwimlError

Check = Callable[[str], bool]


def _bool(value: str) -> bool:
    return value.lower() in ("true", "false")


def _method(value: str) -> bool:
    return value.upper() in ("GET", "POST")


def _positive_int(value: str) -> bool:
    return value.isdigit() and int(value) >= 1


def _non_negative_int(value: str) -> bool:
    return value.isdigit()


def _url(value: str) -> bool:
    return bool(value.strip()) and not re.search(r"\s", value.strip())


def _text(value: str) -> bool:
    return bool(value.strip())


def _language(value: str) -> bool:
    return re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", value) is not None


def _one_of(*options: str) -> Check:
    return lambda value: value in options


def _tokens(*options: str) -> Check:
    return lambda value: bool(value.split()) and all(token in options for token in value.split())


def _gather_finish_key(value: str) -> bool:
    return value == "" or (len(value) == 1 and value in "0123456789#*")


def _record_finish_keys(value: str) -> bool:
    return all(key in "0123456789#*" for key in value)


def _speech_timeout(value: str) -> bool:
    return value == "auto" or _positive_int(value)


def _play_digits(value: str) -> bool:
    return bool(value) and all(key in "0123456789#*wW" for key in value)


def _phone_number(value: str) -> bool:
    """E.164, as <Dial callerId> needs (Twilio also takes a verified number written with spaces or dashes)."""
    return re.fullmatch(r"\+?[0-9][0-9 ()-]{5,20}", value.strip()) is not None


def _dial_timeout(value: str) -> bool:
    return value.isdigit() and 5 <= int(value) <= 600


@dataclass(frozen=True)
class VerbSpec:
    attributes: dict[str, Check]
    children: frozenset[str] = frozenset()
    text: str = "forbidden"  # "forbidden", "optional" or "required"
    ssml: bool = False  # <Say> may hold SSML elements


SSML_TAGS = frozenset({"break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w"})

SPECS: dict[str, VerbSpec] = {
    "Say": VerbSpec({"voice": _text, "language": _language, "loop": _non_negative_int}, text="optional", ssml=True),
    "Play": VerbSpec({"loop": _non_negative_int, "digits": _play_digits}, text="optional"),
    "Pause": VerbSpec({"length": _positive_int}),
    "Gather": VerbSpec(
        {
            "action": _url,
            "actionOnEmptyResult": _bool,
            "debug": _bool,
            "dtmfDetection": _bool,
            "enhanced": _bool,
            "finishOnKey": _gather_finish_key,
            "hints": _text,
            "input": _tokens("dtmf", "speech"),
            "language": _language,
            "method": _method,
            "numDigits": _positive_int,
            "partialResultCallback": _url,
            "partialResultCallbackMethod": _method,
            "profanityFilter": _bool,
            "speechModel": _text,
            "speechTimeout": _speech_timeout,
            "timeout": _positive_int,
        },
        children=frozenset({"Say", "Play", "Pause"}),
    ),
    "Record": VerbSpec(
        {
            "action": _url,
            "finishOnKey": _record_finish_keys,
            "maxLength": _positive_int,
            "method": _method,
            "playBeep": _bool,
            "recordingStatusCallback": _url,
            "recordingStatusCallbackEvent": _tokens("in-progress", "completed", "absent"),
            "recordingStatusCallbackMethod": _method,
            "timeout": _non_negative_int,
            "transcribe": _bool,
            "transcribeCallback": _url,
            "trim": _one_of("trim-silence", "do-not-trim"),
        }
    ),
    "Redirect": VerbSpec({"method": _method}, text="required"),
    "Dial": VerbSpec(
        {
            "action": _url,
            "answerOnBridge": _bool,
            "callerId": _phone_number,
            "hangupOnStar": _bool,
            "method": _method,
            "record": _one_of("do-not-record", "record-from-answer", "record-from-ringing",
                              "record-from-answer-dual", "record-from-ringing-dual"),
            "ringTone": _text,
            "timeLimit": _positive_int,
            "timeout": _dial_timeout,
        },
        children=frozenset({"Number"}),
        text="optional",
    ),
    "Number": VerbSpec({"sendDigits": _play_digits, "url": _url, "method": _method}, text="required"),
    "Hangup": VerbSpec({}),
}
# Nouns: valid only inside their verb.
NOUNS = {"Number": "Dial"}
UNSIMULATED_NOUNS = frozenset({"Client", "Sip", "Conference", "Queue", "Application", "WhatsApp"})

# Real Twilio voice verbs the simulator does not play; a document using one is refused clearly.
UNSIMULATED_VERBS = frozenset(
    {"Connect", "Echo", "Enqueue", "Leave", "Pay", "Prompt", "Queue", "Refer", "Reject", "Sms", "Start", "Stop"}
)


@dataclass(frozen=True)
class Verb:
    """One TwiML verb: its name, attributes exactly as written, text content and nested verbs."""

    name: str
    attributes: dict[str, str] = field(default_factory=dict)
    text: str = ""
    children: tuple["Verb", ...] = ()

    def get(self, attribute: str, default: str | None = None) -> str | None:
        return self.attributes.get(attribute, default)

    def flag(self, attribute: str, default: bool = False) -> bool:
        value = self.attributes.get(attribute)
        return default if value is None else value.lower() == "true"

    def number(self, attribute: str, default: int | None = None) -> int | None:
        value = self.attributes.get(attribute)
        return default if value is None else int(value)

    def method(self) -> str:
        return self.attributes.get("method", "POST").upper()


@dataclass(frozen=True)
class Document:
    """A parsed TwiML response and the URL it came from."""

    verbs: tuple[Verb, ...]
    raw: str
    url: str = ""

    def walk(self) -> Iterator[tuple[str, Verb]]:
        """Every verb with its path, e.g. ("Response/Gather/Say", verb), in document order."""

        def visit(prefix: str, verbs: tuple[Verb, ...]):
            for verb in verbs:
                path = f"{prefix}/{verb.name}"
                yield path, verb
                yield from visit(path, verb.children)

        yield from visit("Response", self.verbs)

    def names(self) -> list[str]:
        """Top-level verb names, in order."""
        return [verb.name for verb in self.verbs]

    def find(self, name: str) -> list[Verb]:
        return [verb for _, verb in self.walk() if verb.name == name]

    @property
    def said(self) -> list[str]:
        return [verb.text for verb in self.find("Say")]


def parse_twiml(body: bytes | str, url: str = "") -> Document:
    """Parse ``body`` as TwiML; raise TwimlError wherever Twilio would refuse it."""
    raw = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    if not raw.strip():
        raise TwimlError(f"empty response body from {url or 'the app'}: Twilio expects a TwiML document")
    if re.search(r"<!DOCTYPE|<!ENTITY", raw, re.IGNORECASE):
        raise TwimlError(f"TwiML from {url or 'the app'} has a DOCTYPE/ENTITY declaration; Twilio does not accept one")
    try:
        root = ET.fromstring(body if isinstance(body, bytes) else body.encode("utf-8"))
    except ET.ParseError as exc:
        raise TwimlError(f"response from {url or 'the app'} is not well-formed XML ({exc}): {raw[:200]!r}") from exc
    if root.tag != "Response":
        raise TwimlError(f"TwiML root element must be <Response>, not <{root.tag}>")
    if root.attrib:
        raise TwimlError(f"<Response> takes no attributes, got {sorted(root.attrib)}")
    _no_stray_text(root.text, "Response")
    verbs = []
    for child in root:
        verbs.append(_verb(child, "Response", nested_in=None))
        _no_stray_text(child.tail, "Response")
    return Document(tuple(verbs), raw, url)


def _no_stray_text(text: str | None, where: str) -> None:
    if text and text.strip():
        raise TwimlError(f"stray text {text.strip()[:60]!r} inside <{where}>")


def _verb(element: ET.Element, parent_path: str, nested_in: VerbSpec | None) -> Verb:
    name = element.tag
    path = f"{parent_path}/{name}"
    if name in UNSIMULATED_VERBS:
        raise TwimlError(f"<{name}> at {path} is a Twilio verb the simulator does not support")
    if name in UNSIMULATED_NOUNS and parent_path.endswith("/Dial"):
        raise TwimlError(f"<{name}> at {path} is a <Dial> noun the simulator does not support")
    if name in NOUNS and not parent_path.endswith("/" + NOUNS[name]):
        raise TwimlError(f"<{name}> is a noun of <{NOUNS[name]}> and may not stand at {path}")
    spec = SPECS.get(name)
    if spec is None:
        raise TwimlError(f"unknown TwiML verb <{name}> at {path}")
    if nested_in is not None and name not in nested_in.children:
        raise TwimlError(f"<{name}> may not be nested in <{parent_path.rsplit('/', 1)[-1]}> (at {path})")
    for attribute, value in element.attrib.items():
        check = spec.attributes.get(attribute)
        if check is None:
            raise TwimlError(f"<{name}> has no attribute {attribute!r} (at {path}); allowed: {sorted(spec.attributes)}")
        if not check(value):
            raise TwimlError(f"<{name} {attribute}={value!r}> is not a valid value (at {path})")

    children: list[Verb] = []
    text_parts = [element.text or ""]
    for child in element:
        if spec.ssml and child.tag in SSML_TAGS:
            text_parts.append("".join(child.itertext()))
        elif spec.children:
            children.append(_verb(child, path, nested_in=spec))
        else:
            raise TwimlError(f"<{child.tag}> may not be nested in <{name}> (at {path})")
        text_parts.append(child.tail or "")
    text = " ".join(" ".join(text_parts).split())

    if spec.text == "forbidden" and text:
        raise TwimlError(f"<{name}> takes no text, got {text[:60]!r} (at {path})")
    if spec.text == "required" and not text:
        raise TwimlError(f"<{name}> needs text content (at {path})")
    if name == "Say" and not text:
        raise TwimlError(f"<Say> has nothing to say (at {path})")
    if name == "Play" and not text and "digits" not in element.attrib:
        raise TwimlError(f"<Play> needs a URL or a digits attribute (at {path})")
    if name == "Play" and text and not _url(text):
        raise TwimlError(f"<Play> URL {text!r} is not a URL (at {path})")
    if name == "Dial" and (bool(text) == bool(children) or len(children) > 1):
        raise TwimlError(f"<Dial> needs one thing to dial: a number as its text, or one <Number> (at {path}); "
                         "the simulator does not ring several at once")
    if name in ("Dial", "Number") and text and not _phone_number(text):
        raise TwimlError(f"<{name}> {text!r} is not a phone number (at {path})")
    return Verb(name, dict(element.attrib), text, tuple(children))
