"""The two SQL pieces the dashboard needs that SQLite and PostgreSQL spell differently or not at all:
the seconds between two timestamps, and "which span is this time in" as a CASE over bound bounds."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, case as sql_case, literal, null
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class seconds_between(FunctionElement):
    """seconds_between(earlier, later): a float, negative if `later` is before `earlier`."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between, "sqlite")
def _sqlite_seconds(element, compiler, **kw):
    # SQLite keeps these as ISO text in UTC (storage.models.UTCDateTime); julianday reads it to the
    # millisecond, which is finer than anything the dashboard shows.
    earlier, later = list(element.clauses)
    return f"((julianday({compiler.process(later, **kw)}) - julianday({compiler.process(earlier, **kw)})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _postgresql_seconds(element, compiler, **kw):
    earlier, later = list(element.clauses)
    return f"EXTRACT(EPOCH FROM ({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)}))"


def span_index(column: ColumnElement, bounds: list[datetime]) -> ColumnElement:
    """0 for a time in [bounds[0], bounds[1]), 1 for the next span, ...; NULL outside them all.

    A balanced tree of CASEs, so each row costs about log2(spans) comparisons rather than one per span
    (52 weeks: 6, not 52)."""
    def within(low: int, high: int) -> ColumnElement:  # spans low..high-1, the time known to be >= bounds[low]
        if high - low == 1:
            return literal(low)
        middle = (low + high) // 2
        return sql_case((column < bounds[middle], within(low, middle)), else_=within(middle, high))

    spans = len(bounds) - 1
    return sql_case(((column < bounds[0]) | (column >= bounds[-1]), null()), else_=within(0, spans))


def band_index(value: ColumnElement, limits: list[float | None]) -> ColumnElement:
    """0 for a value under limits[0], 1 under limits[1], ...; the last limit may be None (no upper end)."""
    whens = [(value < limit, i) for i, limit in enumerate(limits) if limit is not None]
    return sql_case(*whens, else_=len(limits) - 1)
