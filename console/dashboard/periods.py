"""The spans the dashboard counts in: weeks as the handlers' calendar has them (Monday to Sunday in
London, clock changes included) and age bands. Plain Python, no database: the services turn these into
bound parameters, so every dialect buckets rows the same way."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from console.cases.services import DISPLAY_ZONE

WEEK_CHOICES = (4, 12, 26, 52)
DEFAULT_WEEKS = 12


@dataclass(frozen=True)
class Week:
    start: datetime  # Monday 00:00 in London, as UTC
    end: datetime  # the next Monday 00:00, as UTC

    @property
    def label(self) -> str:
        local = self.start.astimezone(DISPLAY_ZONE)
        return f"{local.day} {local:%b}"

    @property
    def long_label(self) -> str:
        local = self.start.astimezone(DISPLAY_ZONE)
        return f"{local.day} {local:%b %Y}"


def weeks_up_to(now: datetime, count: int) -> list[Week]:
    """The `count` weeks ending with the one `now` is in, oldest first. Each boundary is a London
    midnight, so a week is 167 or 169 hours when the clocks change within it."""
    today = now.astimezone(DISPLAY_ZONE).date()
    monday = today - timedelta(days=today.weekday())
    starts = [monday - timedelta(weeks=back) for back in range(count, -1, -1)]
    bounds = [datetime.combine(day + timedelta(weeks=1), time(0), tzinfo=DISPLAY_ZONE).astimezone(timezone.utc)
              for day in starts]
    return [Week(bounds[i], bounds[i + 1]) for i in range(count)]


@dataclass(frozen=True)
class Band:
    """An age band: at least `low` and under `high` (None: no upper end)."""

    label: str
    low: timedelta
    high: timedelta | None


OPEN_CASE_AGES = (
    Band("Under a day", timedelta(0), timedelta(days=1)),
    Band("1 to 7 days", timedelta(days=1), timedelta(days=7)),
    Band("1 to 4 weeks", timedelta(days=7), timedelta(days=28)),
    Band("4 to 13 weeks", timedelta(days=28), timedelta(days=91)),
    Band("Over 13 weeks", timedelta(days=91), None),
)

FIRST_REVIEW_DELAYS = (
    Band("Under an hour", timedelta(0), timedelta(hours=1)),
    Band("1 to 4 hours", timedelta(hours=1), timedelta(hours=4)),
    Band("4 to 24 hours", timedelta(hours=4), timedelta(days=1)),
    Band("1 to 3 days", timedelta(days=1), timedelta(days=3)),
    Band("3 to 7 days", timedelta(days=3), timedelta(days=7)),
    Band("Over 7 days", timedelta(days=7), None),
)


def duration_label(seconds: float | None) -> str:
    """A wait as a person says it: minutes under two hours, hours under two days, then days."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 2 * 3600:
        minutes = round(seconds / 60)
        return f"{minutes} minute{'' if minutes == 1 else 's'}"
    if seconds < 2 * 86400:
        return f"{round(seconds / 3600)} hours"
    return f"{round(seconds / 86400)} days"
