"""The dashboard's tests: the line's rows made straight in the database as the line, the workers and the
console leave them (cases, takes, calls, jobs), and signed-in people."""
from __future__ import annotations

import pytest

from tests.console.dashboard.support import LineRecords


@pytest.fixture
def line(console) -> LineRecords:
    return LineRecords(console)


def _signed_in(person):
    response = person.signs_in()
    assert response.status_code == 302 and "/sign-in" not in response.headers["Location"], \
        f"could not sign in ({response.status_code})"
    return person


@pytest.fixture
def handler(people):
    return _signed_in(people.handler("hana"))


@pytest.fixture
def supervisor(people):
    return _signed_in(people.supervisor("sue"))
