"""The SVG shapes the console draws from the counts: scaled to the largest column, stacked in order."""
from __future__ import annotations

from console.dashboard.charts import column_chart, nice_scale, row_chart
from console.dashboard.services import Breakdown, Series


def test_the_axis_ends_on_a_round_number_above_the_largest_count():
    assert nice_scale(0) == (1, 1)
    assert nice_scale(3) == (3, 1)
    assert nice_scale(16) == (20, 5)
    assert nice_scale(230) == (300, 100)


def test_stacked_columns_are_as_tall_as_their_counts_and_empty_ones_draw_nothing():
    counts = Breakdown(("1 Dec", "8 Dec", "15 Dec"), (Series("new", "New", (2, 0, 1)), Series("in-review", "In review", (2, 0, 0))))
    chart = column_chart(counts, width=400, height=240)

    assert [rect.title for rect in chart.rects] == ["1 Dec: New: 2", "1 Dec: In review: 2", "15 Dec: New: 1"]
    new, in_review, later = chart.rects
    assert new.height == in_review.height == 2 * later.height  # one scale for all
    assert round(in_review.y + in_review.height, 1) == new.y  # stacked: in review sits on new
    assert [entry.label for entry in chart.legend] == ["New", "In review"]
    assert not chart.empty


def test_rows_end_with_their_totals_and_nothing_counted_says_so():
    chart = row_chart(Breakdown(("Under a day", "1 to 7 days"), (Series("reviewed", "Cases", (0, 0)),)))
    assert chart.empty and chart.rects == ()
    assert [text.text for text in chart.texts] == ["Under a day", "0", "1 to 7 days", "0"]
