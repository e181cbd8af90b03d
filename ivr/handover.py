"""The live handover to a call handler: when the line is open, and where the call goes.

Plain Python, like the flow: settings.py parses the opening hours with OpeningHours.parse (so a bad
value stops the start with a message), the flow asks is_open with the time its clock gives.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_TIMEZONE = "Europe/London"
# One shift: a day or a range of days, then the hours, e.g. "Mon-Fri 09:00-17:30" or "Sat 10:00-14:00".
SHIFT = re.compile(r"(?P<first>[A-Za-z]{3})(?:-(?P<last>[A-Za-z]{3}))? +(?P<start>[0-9]{2}:[0-9]{2})-(?P<end>[0-9]{2}:[0-9]{2})")
# The clock the line's web process reads; tests put their own under this key in app.extensions.
CLOCK = "hotline.clock"

Clock = Callable[[], datetime]


class UnknownTimeZone(ValueError):
    """The opening hours' time zone is not in this system's time zone database."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Shift:
    weekday: int  # Monday is 0, as datetime.weekday()
    start: int  # minutes after local midnight
    end: int  # exclusive; 24 * 60 for "24:00"


def _minutes(text: str, *, is_end: bool) -> int:
    hours, minutes = int(text[:2]), int(text[3:])
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not is_end)):
        raise ValueError(f"{text} is not a time of day (00:00 to 24:00)")
    return hours * 60 + minutes


def _day(text: str) -> int:
    try:
        return DAYS.index(text.lower())
    except ValueError:
        raise ValueError(f"{text!r} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)") from None


@dataclass(frozen=True)
class OpeningHours:
    """Local shifts in one time zone, so the hours follow the clocks going forward and back."""

    shifts: tuple[Shift, ...]
    timezone: str = DEFAULT_TIMEZONE

    @classmethod
    def parse(cls, text: str, timezone_name: str = DEFAULT_TIMEZONE) -> "OpeningHours":
        """"Mon-Fri 09:00-17:00; Sat 10:00-14:00". Raises ValueError naming what is wrong (never a
        guess: a line that says it is open and rings nobody is worse than one that never offers it)."""
        try:
            ZoneInfo(timezone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise UnknownTimeZone(f"{timezone_name!r} is not a time zone this system knows (e.g. Europe/London)") from None
        shifts: list[Shift] = []
        for part in (piece.strip() for piece in text.split(";")):
            if not part:
                continue
            match = SHIFT.fullmatch(part)
            if match is None:
                raise ValueError(f"{part!r} is not a shift like 'Mon-Fri 09:00-17:00'")
            first = _day(match["first"])
            last = _day(match["last"]) if match["last"] else first
            start, end = _minutes(match["start"], is_end=False), _minutes(match["end"], is_end=True)
            if last < first:
                raise ValueError(f"{part!r}: the days run backwards (write Mon-Fri, not Fri-Mon)")
            if end <= start:
                raise ValueError(f"{part!r}: a shift must end after it starts (split one past midnight in two, "
                                 "e.g. 'Fri 22:00-24:00; Sat 00:00-02:00')")
            shifts += [Shift(day, start, end) for day in range(first, last + 1)]
        if not shifts:
            raise ValueError("no shifts given")
        return cls(tuple(shifts), timezone_name)

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        return any(s.weekday == local.weekday() and s.start <= minute < s.end for s in self.shifts)


@dataclass(frozen=True)
class Handover:
    """Where a caller who presses 0 is put through to, and as whom. caller_id is the hotline's own
    number: the handler's phone shows the line, never the caller. The duty number is staff's own
    phone, so it stays out of reprs and logs."""

    number: str = field(repr=False)
    caller_id: str
    hours: OpeningHours
    ring_seconds: int = 30

    def is_open(self, at: datetime) -> bool:
        return self.hours.is_open(at)
