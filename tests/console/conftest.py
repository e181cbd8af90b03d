"""A console over the same test database as the line, and the people who use it.

`people.handler()` (or .supervisor(), .admin()) makes an enrolled account with a TOTP second factor,
through the same services an invitation uses; `person.signs_in()` then goes through the real sign-in
pages with a Flask test client, so every request passes the real guard, CSRF and session store.
"""
from __future__ import annotations

import secrets

import pytest

from tests.console.cases.helpers import CaseFiles
from tests.console.support import People


@pytest.fixture
def console_env(settings_env: dict[str, str]) -> dict[str, str]:
    return {**settings_env, "CONSOLE_SECRET_KEY": secrets.token_urlsafe(48)}


@pytest.fixture
def console_settings(console_env, settings):
    from console.settings import ConsoleSettings

    # `settings` (the line's) has already migrated the database.
    return ConsoleSettings.from_env(console_env)


@pytest.fixture
def console_app(console_settings):
    from console import create_app

    app = create_app(console_settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["console"].db.dispose()


@pytest.fixture
def console(console_app):
    return console_app.extensions["console"]


@pytest.fixture
def people(console_app, private_key) -> People:
    return People(console_app, private_key)


@pytest.fixture
def route_values(hotline, fake_twilio, people) -> dict[str, object]:
    """Real values for the console's URL arguments: a named caller's case with one sealed take, and an
    account that is nobody's signed-in identity (so admin actions on it disturb no test's session)."""
    from sqlalchemy import select

    from storage.models import Recording
    from tests.support.takes import stored_case_with_contact

    reference, _ = stored_case_with_contact(hotline, fake_twilio)
    with hotline.db.session() as session:
        recording_id = session.scalar(select(Recording.id))
    bystander = people.handler()
    return {"reference": reference, "recording_id": recording_id, "user_id": bystander.user_id}


# --- signed-in people and cases made straight in the database, for the case-work packages ------------

def signed_in(person):
    response = person.signs_in()
    assert response.status_code == 302 and "/sign-in" not in response.headers["Location"], \
        f"could not sign in ({response.status_code})"
    return person


@pytest.fixture
def cases(console) -> CaseFiles:
    return CaseFiles(console)


@pytest.fixture
def handler(people):
    return signed_in(people.handler("hana"))


@pytest.fixture
def colleague(people):
    return signed_in(people.handler("cole"))


@pytest.fixture
def supervisor(people):
    return signed_in(people.supervisor("sue"))


@pytest.fixture
def admin(people):
    return signed_in(people.admin("ada"))
