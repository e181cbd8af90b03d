"""Which words of a transcript a referral hides, and where that leaves silence in the audio.

Plain functions over a transcript's words; nothing here decrypts or stores anything. Candidate detection
is offline and rule-based (no model, no network): it proposes words for a handler to review, pre-ticked.
It looks for what identifies a caller or an officer in the words a speech model writes for telephone
audio, where numbers and letters arrive spelled out ("oh seven seven double oh", "s w one a"), and in
the written forms a handler's correction may use ("07700 900123", "SW1A 1AA", "ab@example.com"):

- phone numbers: a run of seven or more digits, spoken or written;
- collar, warrant and badge numbers: the digits after "collar (number)", "warrant (card|number)",
  "badge", "shoulder number", or a rank's letters ("pc", "ps", "dc", ...);
- UK postcodes and vehicle registrations: letters and digits in those shapes, spelled or written;
- email addresses: written, or spoken as "name at domain dot com".
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

REDACTED = "[redacted]"
# Silence a little either side of a word: word timings from a speech model are approximate, and a
# syllable left audible at the edge of a name is a syllable too many.
PAD_SECONDS = 0.15


class CandidateKind(enum.StrEnum):
    EMAIL = "email"
    COLLAR = "collar-number"
    VEHICLE = "vehicle"
    POSTCODE = "postcode"
    PHONE = "phone"

    @property
    def label(self) -> str:
        return {"email": "email address", "collar-number": "collar or warrant number",
                "vehicle": "vehicle registration", "postcode": "postcode", "phone": "phone number"}[self.value]


DIGIT_WORDS = {"zero": "0", "oh": "0", "o": "0", "nought": "0", "one": "1", "two": "2", "three": "3",
               "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}
REPEATS = {"double": 2, "triple": 3}
COLLAR_TRIGGERS = {"collar", "warrant", "badge", "shoulder"}
COLLAR_FILLERS = {"number", "numbers", "no", "card", "id", "is", "was", "of"}
RANKS = {"pc", "ps", "dc", "ds", "wpc", "pcso", "sgt", "insp"}
TLDS = {"com", "uk", "org", "net", "co", "gov", "police", "io", "me", "info", "biz", "ac", "sch", "nhs", "email"}
EMAIL_JOINERS = {"dot", "underscore", "dash", "hyphen"}

_WRITTEN_EMAIL = re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$")
_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$")
_VEHICLE = re.compile(r"^(?:[A-Z]{2}[0-9]{2}[A-Z]{3}|[A-Z][0-9]{1,3}[A-Z]{3}|[A-Z]{3}[0-9]{1,3}[A-Z])$")
PHONE_MIN_DIGITS = 7
SPELLED_MAX_TOKENS = 12  # the longest spelled-out postcode or registration: "s w one a one a a" is 7


def normalise(text: str) -> str:
    """A word as the rules compare it: lower case, without the punctuation a correction may add."""
    return text.lower().strip(" ,;:!?\"'()[]")


def _spelled(token: str) -> str | None:
    """What a token contributes to a spelled-out code (letters and digits), or None if it is a word."""
    if token in DIGIT_WORDS:
        return DIGIT_WORDS[token]
    clean = token.replace("-", "")
    if len(clean) == 1 and clean.isalnum():
        return clean.upper()
    if clean.isalnum() and clean.isascii() and len(clean) <= 8 and (any(c.isdigit() for c in clean) or len(clean) <= 3):
        return clean.upper()
    return None


def _digits(tokens: Sequence[str], index: int) -> tuple[str, int] | None:
    """The digits spoken or written from tokens[index] on ("double five" is 55), and the index after."""
    found, position = "", index
    while position < len(tokens):
        token = tokens[position]
        if token in REPEATS and position + 1 < len(tokens) and tokens[position + 1] in DIGIT_WORDS:
            found += DIGIT_WORDS[tokens[position + 1]] * REPEATS[token]
            position += 2
            continue
        stripped = re.sub(r"[+\-().]", "", token)
        following = tokens[position + 1] if position + 1 < len(tokens) else ""
        if token in ("o", "oh"):
            # A zero inside a number, or starting one ("oh seven seven"); otherwise just "oh".
            if not (found or following in DIGIT_WORDS or following in REPEATS or following.isdigit()):
                break
            found += "0"
        elif token in DIGIT_WORDS:
            found += DIGIT_WORDS[token]
        elif stripped.isdigit():
            found += stripped
        else:
            break
        position += 1
    return (found, position) if found else None


def candidates(words: Sequence[str]) -> dict[int, CandidateKind]:
    """Word index -> the kind of identifying detail it looks part of. For review, never applied unseen."""
    tokens = [normalise(word) for word in words]
    found: dict[int, CandidateKind] = {}

    def mark(first: int, end: int, kind: CandidateKind) -> None:
        for index in range(first, end):
            found.setdefault(index, kind)

    _emails(tokens, mark)
    _collar_numbers(tokens, mark)
    _spelled_codes(tokens, mark)
    _phone_numbers(tokens, mark)
    return dict(sorted(found.items()))


def _emails(tokens: list[str], mark) -> None:
    for index, token in enumerate(tokens):
        if "@" in token and _WRITTEN_EMAIL.match(token.strip(".")):
            mark(index, index + 1, CandidateKind.EMAIL)
    for at, token in enumerate(tokens):
        if token != "at" or at == 0:
            continue
        # After "at": a domain of words joined by "dot", ending in a known top-level name.
        position, last_tld = at + 1, None
        if position >= len(tokens) or not tokens[position].isalnum():
            continue
        while position + 2 < len(tokens) and tokens[position + 1] == "dot" and tokens[position + 2].isalnum():
            position += 2
            if tokens[position] in TLDS:
                last_tld = position
        if last_tld is None:
            continue
        # Before "at": the name, one word, or words joined by "dot", "underscore"...
        first = at - 1
        while first >= 2 and tokens[first - 1] in EMAIL_JOINERS and tokens[first - 2].isalnum():
            first -= 2
        mark(first, last_tld + 1, CandidateKind.EMAIL)


def _collar_numbers(tokens: list[str], mark) -> None:
    for index, token in enumerate(tokens):
        if token in COLLAR_TRIGGERS or token in RANKS:
            position = index + 1
            while position < len(tokens) and tokens[position] in COLLAR_FILLERS and token not in RANKS:
                position += 1
            digits = _digits(tokens, position)
            if digits is not None:
                mark(position, digits[1], CandidateKind.COLLAR)
        elif re.fullmatch(r"(?:pc|ps|dc|ds)\d{2,6}", token):  # "PC4567" written as one
            mark(index, index + 1, CandidateKind.COLLAR)


def _spelled_codes(tokens: list[str], mark) -> None:
    """Postcodes and registrations: the longest run of spelled tokens that reads as one."""
    parts = [_spelled(token) for token in tokens]
    index = 0
    while index < len(tokens):
        best: tuple[int, CandidateKind] | None = None
        code = ""
        for end in range(index, min(len(tokens), index + SPELLED_MAX_TOKENS)):
            if parts[end] is None:
                break
            code += parts[end]
            if not any(c.isdigit() for c in code) or len(code) < 5:
                continue
            if _VEHICLE.match(code):
                best = (end + 1, CandidateKind.VEHICLE)
            elif _POSTCODE.match(code):
                best = (end + 1, CandidateKind.POSTCODE)
        if best is not None:
            mark(index, best[0], best[1])
            index = best[0]
        else:
            index += 1


def _phone_numbers(tokens: list[str], mark) -> None:
    index = 0
    while index < len(tokens):
        digits = _digits(tokens, index)
        if digits is None:
            index += 1
            continue
        number, end = digits
        if len(number) >= PHONE_MIN_DIGITS:
            mark(index, end, CandidateKind.PHONE)
        index = max(end, index + 1)


# --- applying a redaction ---------------------------------------------------------------------------

def redacted_text(words: Sequence[str], redacted: Iterable[int]) -> tuple[str, int]:
    """The words with each run of redacted ones read as one "[redacted]" (a run's length would say how
    many words a name had), and how many runs there were."""
    hidden = set(redacted)
    out: list[str] = []
    runs = 0
    for index, word in enumerate(words):
        if index in hidden:
            if not out or out[-1] != REDACTED or (index - 1) not in hidden:
                out.append(REDACTED)
                runs += 1
        else:
            out.append(word)
    return " ".join(out), runs


@dataclass(frozen=True)
class Span:
    start: float
    end: float


def silent_spans(timings: Sequence[tuple[float, float]], redacted: Iterable[int], duration: float,
                 pad: float = PAD_SECONDS) -> list[Span]:
    """The stretches of audio to silence for the redacted words (timings[i] = word i's start and end),
    padded, clipped to the audio and merged where they touch."""
    spans = sorted((max(0.0, timings[i][0] - pad), min(duration, timings[i][1] + pad))
                   for i in set(redacted) if 0 <= i < len(timings))
    merged: list[Span] = []
    for start, end in spans:
        if merged and start <= merged[-1].end:
            merged[-1] = Span(merged[-1].start, max(merged[-1].end, end))
        else:
            merged.append(Span(start, end))
    return merged
