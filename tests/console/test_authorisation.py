"""Who may reach what. Built from the console's URL map, so a route added later is covered at once:
every route, with each of its methods and real argument values, for each kind of visitor.

The policy each route is held to is the one its view declares (console.access.policy_of), except for
the sensitive routes pinned below: a view that declares too weak a policy fails here too.
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from console.access import Audience, Policy, policy_of, public
from console.accounts.services import disable
from storage.models import Role, User
from tests.console.routes import Route, console_routes
from tests.console.support import People, Person, skip_until_built

PINNED = (
    ("accounts.*", Policy(Audience.SIGNED_IN, Role.ADMIN)),
    ("audit.*", Policy(Audience.SIGNED_IN, Role.SUPERVISOR)),
    ("retention.*", Policy(Audience.SIGNED_IN, Role.SUPERVISOR)),
    ("dashboard.*", Policy(Audience.SIGNED_IN, Role.SUPERVISOR)),
    ("referrals.*force*", Policy(Audience.SIGNED_IN, Role.ADMIN)),
    ("auth.sign_in", Policy(Audience.PUBLIC)),
    ("auth.enrol", Policy(Audience.PUBLIC)),
    ("healthz", Policy(Audience.PUBLIC)),
)
# Every route the contract names; the matrix covers whatever the URL map holds, these included.
CONTRACT_ENDPOINTS = (
    "healthz", "index", "auth.sign_in", "auth.second_factor", "auth.set_up_second_factor",
    "auth.webauthn_options", "auth.webauthn_verify", "auth.sign_out", "auth.enrol", "auth.account",
    "accounts.index", "cases.inbox", "cases.search", "cases.case_page", "media.audio", "media.transcript",
    "media.peaks", "media.correct", "media.history", "audit.trail", "audit.case_trail", "audit.user_trail",
    "retention.reseal_period",
)
CSRF_PAGE_TEXT = "That form had expired or was not sent from this console"
VISITORS = ("signed out", "password only", "handler", "supervisor", "admin", "disabled account", "expired session")


def expected_policy(app, endpoint: str) -> Policy:
    for pattern, policy in PINNED:
        if fnmatch(endpoint, pattern):
            return policy
    with app.app_context():
        return policy_of(endpoint)


@dataclass
class Visitor:
    """A browser in one state. Its cookie token is presented again before every request, because the
    guard tells the browser to drop a disabled or expired session's cookie and we want every route to
    see that same session."""

    kind: str
    client: FlaskClient
    role: Role | None = None
    token: str | None = None
    csrf: str | None = None

    def requests(self, route: Route):
        if self.token:
            self.client.set_cookie("hotline_console", self.token)
        if route.method == "GET":
            return self.client.get(route.path)
        form = {"csrf_token": self.csrf} if self.csrf else {}
        headers = {"X-CSRFToken": self.csrf} if self.csrf else {}
        return self.client.open(route.path, method=route.method, data=form, headers=headers)


def signed_in(person: Person) -> Person:
    response = person.signs_in()
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path != "/sign-in", \
        f"{person.username} could not sign in ({response.status_code})"
    return person


def make_visitor(kind: str, app, people: People) -> Visitor:
    settings = app.config["CONSOLE_SETTINGS"]
    if kind == "signed out":
        return Visitor(kind, app.test_client())
    if kind == "password only":
        person = people.handler()
        response = person.post_form("/sign-in", {"username": person.username, "password": person.password})
        assert "/sign-in/second-factor" in response.headers.get("Location", "")
        return Visitor(kind, person.client, None, person.session_token, person.csrf("/sign-in/second-factor"))
    if kind in ("handler", "supervisor", "admin"):
        person = signed_in(people.make(Role(kind)))
        return Visitor(kind, person.client, person.role, person.session_token, person.csrf())
    person = signed_in(people.handler())
    csrf = person.csrf()
    if kind == "disabled account":
        # Disabled behind the session's back (not through the admin page, which also ends sessions):
        # the guard itself must notice.
        with people.console.db.session() as session:
            disable(session.get(User, person.user_id))
            session.commit()
        return Visitor(kind, person.client, person.role, person.session_token, csrf)
    assert kind == "expired session"
    person.goes_idle(settings.idle_minutes + 1)
    return Visitor(kind, person.client, person.role, person.session_token, None)  # no valid CSRF token either


def problem(policy: Policy, visitor: Visitor, route: Route, response, idle_minutes: int) -> str | None:
    """What is wrong with this answer, or None."""
    status, body = response.status_code, response.get_data().decode("utf-8", "replace")
    if status >= 500:
        return f"answered {status}"
    if policy.audience is Audience.PUBLIC:
        return None
    if visitor.kind == "expired session":
        if status == 401 and f"signed out after {idle_minutes} minutes" in body:
            return None
        return f"answered {status}, not the 'signed out after {idle_minutes} minutes' page"
    if visitor.kind == "disabled account" and policy.audience is Audience.SIGNED_IN:
        if status == 401 and "signed-out-message" in body and "disabled" in body:
            return None
        return f"answered {status}, not the signed-out page for a disabled account"
    may_enter = (visitor.kind == "password only") if policy.audience is Audience.SECOND_FACTOR else (
        visitor.role is not None and visitor.kind != "disabled account" and visitor.role.at_least(policy.role))
    if may_enter:
        if status in (401, 403) or (status == 302 and _to_sign_in(response)):
            return f"answered {status} to a visitor the policy ({policy.describe()}) lets in"
        return None
    if visitor.role is not None and policy.audience is Audience.SIGNED_IN and visitor.kind != "disabled account":
        return None if status == 403 else f"answered {status} to a role below {policy.describe()}, not 403"
    return _sent_to_sign_in(route, response, body)


def _to_sign_in(response) -> bool:
    return urlsplit(response.headers.get("Location", "")).path == "/sign-in"


def _sent_to_sign_in(route: Route, response, body: str) -> str | None:
    status = response.status_code
    if status == 401 or (route.method == "GET" and status == 302 and _to_sign_in(response)):
        return None
    if route.method != "GET" and status == 400 and CSRF_PAGE_TEXT in body:
        return None
    return f"answered {status} to a visitor who is not signed in"


def ordered(routes: list[Route]) -> list[Route]:
    # Signing out ends the visitor's session, so it goes last.
    return sorted(routes, key=lambda route: route.endpoint == "auth.sign_out")


@pytest.mark.parametrize("kind", VISITORS)
def test_every_route_answers_each_visitor_as_its_policy_says(kind, console_app, people, route_values):
    skip_until_built(console_app, "auth.second_factor")
    idle_minutes = console_app.config["CONSOLE_SETTINGS"].idle_minutes
    visitor = make_visitor(kind, console_app, people)
    routes = ordered(console_routes(console_app, route_values))
    assert len(routes) >= 5, "the URL map looks empty"
    problems = []
    for route in routes:
        response = visitor.requests(route)
        found = problem(expected_policy(console_app, route.endpoint), visitor, route, response, idle_minutes)
        if found:
            problems.append(f"{route}: {found}")
    assert problems == [], f"{kind}:\n" + "\n".join(problems)


def routes_differing_from_the_pins(app) -> list[str]:
    wrong = []
    for endpoint in app.view_functions:
        pinned = next((policy for pattern, policy in PINNED if fnmatch(endpoint, pattern)), None)
        if pinned is None:
            continue
        with app.app_context():
            declared = policy_of(endpoint)
        if declared != pinned:
            wrong.append(f"{endpoint} declares {declared.describe()}, must be {pinned.describe()}")
    return wrong


def test_the_sensitive_routes_declare_the_policy_pinned_here(console_app):
    assert routes_differing_from_the_pins(console_app) == []


def test_a_wrongly_declared_policy_is_caught(console_app):
    console_app.view_functions["audit.trail"] = public(lambda: "the whole audit trail")
    assert routes_differing_from_the_pins(console_app) == ["audit.trail declares public, must be supervisor"]


def test_a_view_that_declares_nothing_is_for_signed_in_handlers(console_app):
    # The default is what protects a view whose author forgot to mark it.
    console_app.add_url_rule("/unmarked-for-the-test", "unmarked_for_the_test", lambda: "content")
    client = console_app.test_client()
    response = client.get("/unmarked-for-the-test")
    assert response.status_code == 302 and _to_sign_in(response)
    assert client.post("/unmarked-for-the-test").status_code == 401
    with console_app.app_context():
        assert policy_of("unmarked_for_the_test") == Policy(Audience.SIGNED_IN, Role.HANDLER)


def test_every_route_the_contract_names_is_in_the_url_map(console_app):
    skip_until_built(console_app, *CONTRACT_ENDPOINTS)
    assert set(CONTRACT_ENDPOINTS) <= set(console_app.view_functions)


def test_the_matrix_catches_a_route_that_lets_a_handler_into_a_supervisors_page(console_app):
    # The checker itself, on answers that must fail it.
    handler = Visitor("handler", console_app.test_client(), Role.HANDLER)
    signed_out = Visitor("signed out", console_app.test_client())
    route = Route("audit.trail", "GET", "/audit/", "/audit/")
    policy = expected_policy(console_app, "audit.trail")
    content = console_app.response_class("audit content", status=200)
    assert problem(policy, handler, route, content, 15) is not None
    assert problem(policy, signed_out, route, content, 15) is not None
    assert problem(policy, handler, route, console_app.response_class("no", status=403), 15) is None
