"""Weeks as the handlers' calendar has them, and waits as a person says them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from console.dashboard.periods import duration_label, weeks_up_to


def test_weeks_start_on_a_london_monday_and_the_clock_change_week_is_an_hour_longer():
    now = datetime(2026, 11, 4, 12, 0, tzinfo=timezone.utc)  # a Wednesday
    weeks = weeks_up_to(now, 3)

    assert [week.long_label for week in weeks] == ["19 Oct 2026", "26 Oct 2026", "2 Nov 2026"]
    assert weeks[0].start == datetime(2026, 10, 18, 23, 0, tzinfo=timezone.utc)  # midnight in summer time
    assert weeks[0].end - weeks[0].start == timedelta(hours=169)  # the clocks went back on 25 October
    assert weeks[1].start == datetime(2026, 10, 26, 0, 0, tzinfo=timezone.utc)
    assert weeks[-1].start <= now < weeks[-1].end
    assert all(earlier.end == later.start for earlier, later in zip(weeks, weeks[1:]))


def test_waits_read_in_minutes_hours_or_days():
    assert duration_label(None) == "—"
    assert duration_label(60) == "1 minute"
    assert duration_label(95 * 60) == "95 minutes"
    assert duration_label(5 * 3600 + 20) == "5 hours"
    assert duration_label(2 * 86400) == "2 days"
