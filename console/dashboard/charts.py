"""Bar charts as SVG shapes, drawn by the console from a Breakdown: no script, no library, nothing from
another origin. Colours and sizes are SVG presentation attributes (fill, font-size), which the console's
CSP allows, unlike style attributes. The template (dashboard/_chart.html) only writes these shapes out;
the same numbers are in a table beside each chart for screen readers and for anyone who wants them exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from console.dashboard.services import Breakdown

# Okabe and Ito's palette: told apart with the common kinds of colour blindness, and in greyscale by order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")
COLOURS = {
    # categories, in the phone menu's order; "not given" grey
    "bribery-corruption": "#0072B2", "sexual-misconduct": "#CC79A7", "domestic-abuse": "#D55E00",
    "discrimination": "#009E73", "other": "#E69F00", "none": "#999999",
    # statuses
    "new": "#0072B2", "in-review": "#E69F00", "referred": "#009E73", "no-further-action": "#999999",
    # call-backs and questions
    "unlocked": "#009E73", "not-unlocked": "#D55E00",
    "answered": "#009E73", "heard": "#E69F00", "queued": "#56B4E9", "withdrawn": "#999999",
    "reviewed": "#0072B2", "backlog": "#0072B2",
}
INK, MUTED, GRID = "#1b1f24", "#5b6470", "#d7dce2"
FONT = 12


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str  # the bar's own tooltip: what it counts, and how many


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "middle"  # start | middle | end
    fill: str = MUTED


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str = GRID


@dataclass(frozen=True)
class LegendEntry:
    label: str
    fill: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    rects: tuple[Rect, ...]
    texts: tuple[Text, ...]
    lines: tuple[Line, ...]
    legend: tuple[LegendEntry, ...]
    empty: bool  # nothing to count: the template says so instead of drawing empty axes


def colour(key: str, index: int) -> str:
    return COLOURS.get(key, PALETTE[index % len(PALETTE)])


def nice_scale(largest: int, ticks: int = 4) -> tuple[int, int]:
    """(top of the axis, step between gridlines): whole numbers, steps of 1, 2 or 5 times a power of ten."""
    if largest <= 0:
        return 1, 1
    rough = largest / ticks
    power = 10 ** math.floor(math.log10(rough)) if rough >= 1 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    step = max(1, int(step))
    return step * math.ceil(largest / step), step


def _legend(breakdown: Breakdown) -> tuple[LegendEntry, ...]:
    if len(breakdown.series) < 2:
        return ()
    return tuple(LegendEntry(s.label, colour(s.key, i)) for i, s in enumerate(breakdown.series))


def column_chart(breakdown: Breakdown, *, width: int = 640, height: int = 220, what: str = "") -> Chart:
    """One column per column of the breakdown (a week), its series stacked bottom up."""
    left, right, top, bottom = 40, 8, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = breakdown.totals
    axis_top, step = nice_scale(max(totals, default=0))
    rects, texts, lines = [], [], []
    for value in range(0, axis_top + 1, step):
        y = top + plot_h - plot_h * value / axis_top
        lines.append(Line(left, round(y, 1), width - right, round(y, 1)))
        texts.append(Text(left - 6, round(y + 4, 1), str(value), "end"))
    count = len(breakdown.columns)
    band = plot_w / max(count, 1)
    bar = max(2.0, band * 0.72)
    every = max(1, math.ceil(count / 13))  # room for about 13 labels across
    for i, (label, title) in enumerate(zip(breakdown.columns, breakdown.titles)):
        x = left + band * i + (band - bar) / 2
        base = top + plot_h
        for j, series in enumerate(breakdown.series):
            value = series.values[i]
            if not value:
                continue
            h = plot_h * value / axis_top
            base -= h
            name = f"{series.label}: " if len(breakdown.series) > 1 else ""
            rects.append(Rect(round(x, 1), round(base, 1), round(bar, 1), round(h, 1), colour(series.key, j),
                              f"{what}{title}: {name}{value}"))
        if i % every == 0:
            texts.append(Text(round(x + bar / 2, 1), height - 8, label))
    lines.append(Line(left, top + plot_h, width - right, top + plot_h, MUTED))
    return Chart(width, height, tuple(rects), tuple(texts), tuple(lines), _legend(breakdown), breakdown.total == 0)


def row_chart(breakdown: Breakdown, *, width: int = 640, what: str = "") -> Chart:
    """One bar across per column of the breakdown (an age band, a queue), with its total at the end."""
    label_w, right, row_h, gap, top = 190, 44, 22, 8, 6
    count = len(breakdown.columns)
    height = top + count * (row_h + gap) + 4
    plot_w = width - label_w - right
    totals = breakdown.totals
    largest = max(totals, default=0) or 1
    rects, texts, lines = [], [], [Line(label_w, top - 2, label_w, height - 4, MUTED)]
    for i, (label, title) in enumerate(zip(breakdown.columns, breakdown.titles)):
        y = top + i * (row_h + gap)
        texts.append(Text(label_w - 8, y + row_h / 2 + 4, label, "end", INK))
        x = float(label_w)
        for j, series in enumerate(breakdown.series):
            value = series.values[i]
            if not value:
                continue
            w = plot_w * value / largest
            name = f"{series.label}: " if len(breakdown.series) > 1 else ""
            rects.append(Rect(round(x, 1), y, round(max(w, 1.0), 1), row_h, colour(series.key, j),
                              f"{what}{title}: {name}{value}"))
            x += w
        texts.append(Text(round(x + 6, 1), y + row_h / 2 + 4, str(totals[i]), "start", INK))
    return Chart(width, height, tuple(rects), tuple(texts), tuple(lines), _legend(breakdown), breakdown.total == 0)
