"""The dashboard's tests: the line's rows made straight in the database as the line, the workers and the
console leave them (cases, takes, calls, jobs), and signed-in people."""
from __future__ import annotations

import pytest

from tests.console.dashboard.support import LineRecords


@pytest.fixture
def line(console) -> LineRecords:
    return LineRecords(console)
