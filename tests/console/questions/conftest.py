"""Questions on the case page: cases made straight in the database (with their question keys, as the line
makes them), and signed-in people."""
from __future__ import annotations

import pytest

from tests.console.cases.helpers import CaseFiles


@pytest.fixture
def cases(console) -> CaseFiles:
    return CaseFiles(console)


def _signed_in(person):
    response = person.signs_in()
    assert response.status_code == 302 and "/sign-in" not in response.headers["Location"], \
        f"could not sign in ({response.status_code})"
    return person


@pytest.fixture
def handler(people):
    return _signed_in(people.handler("hana"))
