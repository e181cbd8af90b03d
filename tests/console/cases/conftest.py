"""The case-work tests: a console with small inbox pages (so pagination needs only a few cases),
cases made straight in the database, and signed-in people."""
from __future__ import annotations

import pytest

from tests.console.cases.helpers import CaseFiles

PAGE_SIZE = 3


@pytest.fixture
def console_settings(console_env, settings):
    from console.settings import ConsoleSettings

    return ConsoleSettings.from_env(console_env).with_overrides(page_size=PAGE_SIZE)


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


@pytest.fixture
def colleague(people):
    return _signed_in(people.handler("cole"))


@pytest.fixture
def supervisor(people):
    return _signed_in(people.supervisor("sue"))
