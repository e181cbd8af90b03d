"""What the call flow asks Twilio to do next, without knowing about TwiML or URLs."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Pause:
    seconds: int = 1


@dataclass(frozen=True)
class Play:
    """Audio Twilio fetches and plays: a path under the line's own base URL (the renderer makes it
    absolute), e.g. a handler's question spoken by an offline voice."""

    path: str


@dataclass(frozen=True)
class Dial:
    """Connect the caller to another phone. caller_id is the hotline's own number, so the person
    answering learns nothing of the caller; after the call Twilio goes to step (if given)."""

    number: str
    caller_id: str
    timeout: int = 30
    step: str | None = None


@dataclass(frozen=True)
class Gather:
    """Wait for keys, then go to step. If nothing is pressed, Twilio falls through to a redirect to the
    same step without digits, which the flow reads as 'no input'."""

    step: str
    prompts: tuple[Say | Pause | Play, ...]
    num_digits: int | None = 1
    finish_on_key: str = ""
    timeout: int = 6
    attempt: int = 1
    take: str | None = None


@dataclass(frozen=True)
class Record:
    step: str
    max_length: int
    finish_on_key: str = "#"
    timeout: int = 10  # seconds of silence that end a take; frightened callers pause
    attempt: int = 1


@dataclass(frozen=True)
class Redirect:
    step: str
    attempt: int = 1
    take: str | None = None


@dataclass(frozen=True)
class Hangup:
    pass


Verb = Say | Pause | Play | Gather | Record | Redirect | Dial | Hangup


@dataclass(frozen=True)
class Reply:
    verbs: tuple[Verb, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, *verbs: Verb) -> "Reply":
        return cls(tuple(verbs))

    def spoken(self) -> str:
        parts: list[str] = []
        for verb in self.verbs:
            if isinstance(verb, Say):
                parts.append(verb.text)
            elif isinstance(verb, Gather):
                parts.extend(p.text for p in verb.prompts if isinstance(p, Say))
        return " ".join(parts)
