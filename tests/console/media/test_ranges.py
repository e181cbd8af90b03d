"""Byte ranges as RFC 9110 reads them, and the ten-minute "first look" the audit trail relies on
(plain functions: no database, no app)."""
from __future__ import annotations

import pytest

from console.media.services import SEEN_WINDOW_SECONDS, ByteRange, RangeKind, first_look, parse_range

SIZE = 1000


@pytest.mark.parametrize("header, expected", [
    ("bytes=0-99", ByteRange(RangeKind.PARTIAL, 0, 99)),
    ("bytes=100-", ByteRange(RangeKind.PARTIAL, 100, 999)),
    ("bytes=-50", ByteRange(RangeKind.PARTIAL, 950, 999)),
    ("bytes=-5000", ByteRange(RangeKind.PARTIAL, 0, 999)),  # more than there is: all of it
    ("bytes=990-5000", ByteRange(RangeKind.PARTIAL, 990, 999)),  # the end is clamped
    ("bytes=999-999", ByteRange(RangeKind.PARTIAL, 999, 999)),
    ("bytes=0-0", ByteRange(RangeKind.PARTIAL, 0, 0)),
])
def test_a_satisfiable_range_is_the_bytes_it_names(header, expected):
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-1200", "bytes=-0"])
def test_a_range_outside_the_body_is_unsatisfiable(header):
    assert parse_range(header, SIZE).kind is RangeKind.UNSATISFIABLE


@pytest.mark.parametrize("header", [None, "", "bytes=", "bytes=-", "bytes=abc", "bytes=5-2", "items=0-5",
                                    "bytes=0-1,5-6", "bytes=1e3-", "bytes=" + "9" * 40 + "-"])
def test_a_header_we_cannot_read_is_ignored_and_the_whole_body_sent(header):
    assert parse_range(header, SIZE).kind is RangeKind.WHOLE


def test_nothing_can_be_cut_from_an_empty_body():
    assert parse_range("bytes=-10", 0).kind is RangeKind.UNSATISFIABLE
    assert parse_range("bytes=0-", 0).kind is RangeKind.UNSATISFIABLE


def test_a_take_counts_once_per_ten_minutes_per_session_and_per_kind():
    session: dict = {}
    assert first_look(session, "audio", 7, now=1000.0)
    assert not first_look(session, "audio", 7, now=1001.0)
    assert not first_look(session, "audio", 7, now=1000.0 + SEEN_WINDOW_SECONDS - 1)
    assert first_look(session, "transcript", 7, now=1002.0)  # another kind of access
    assert first_look(session, "audio", 8, now=1003.0)  # another take
    assert first_look(session, "audio", 7, now=1000.0 + SEEN_WINDOW_SECONDS)  # ten minutes on


def test_expired_looks_are_forgotten_so_the_session_stays_small():
    session: dict = {}
    for take in range(50):
        first_look(session, "audio", take, now=0.0)
    first_look(session, "audio", 999, now=SEEN_WINDOW_SECONDS + 1.0)
    assert session["media_seen"] == {"audio:999": SEEN_WINDOW_SECONDS + 1.0}
