"""Every answer the console gives carries the strict headers, its cookie is HttpOnly, SameSite=Strict and
(outside development) Secure, and no page it renders has inline script or style, which the CSP forbids
(a page that needed them would break in the browser, or tempt someone to loosen the policy)."""
from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from console import create_app
from console.accounts.services import invite
from console.settings import ConsoleSettings
from storage.models import Role
from tests.console.routes import console_routes
from tests.console.support import People, skip_until_built

TEMPLATES = Path(__file__).resolve().parents[2] / "console" / "templates"
ALLOWED_SOURCES = {"'self'", "'none'"}
REQUIRED_DIRECTIVES = {"default-src": "'none'", "script-src": "'self'", "style-src": "'self'",
                       "frame-ancestors": "'none'", "base-uri": "'none'", "form-action": "'self'"}


def csp_problems(policy: str) -> list[str]:
    directives = {}
    for part in filter(None, (p.strip() for p in policy.split(";"))):
        name, *sources = part.split()
        directives[name] = sources
    problems = [f"{name} is not {value}" for name, value in REQUIRED_DIRECTIVES.items()
                if directives.get(name) != [value]]
    for name, sources in directives.items():
        for source in sources:
            if source in ALLOWED_SOURCES or (name == "img-src" and source == "data:"):
                continue
            problems.append(f"{name} allows {source}")
    return problems


def header_problems(response) -> list[str]:
    headers = response.headers
    problems = csp_problems(headers.get("Content-Security-Policy", ""))
    expected = {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff"}
    problems += [f"{name}: {headers.get(name)!r}" for name, value in expected.items() if headers.get(name) != value]
    return problems


class InlineCode(HTMLParser):
    """Finds what a strict CSP would block: inline <script>, <style>, style="", on*="" handlers,
    javascript: URLs, and anything loaded from another origin."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script":
            if not attributes.get("src"):
                self.problems.append("an inline <script>")
            self._in_script = True
        if tag == "style":
            self.problems.append("a <style> element")
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"style= on <{tag}>")
            if name.startswith("on"):
                self.problems.append(f"{name}= on <{tag}>")
            if name in ("src", "href", "action", "formaction", "poster", "data") and value:
                if value.strip().lower().startswith("javascript:"):
                    self.problems.append(f"a javascript: URL on <{tag}>")
                parts = urlsplit(value)
                if parts.netloc and parts.hostname not in ("localhost", None):
                    self.problems.append(f"<{tag} {name}> from another origin: {parts.netloc}")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.problems.append("a <script> with inline code")


def page_problems(response) -> list[str]:
    if response.mimetype != "text/html":
        return []
    parser = InlineCode()
    parser.feed(response.get_data(as_text=True))
    return parser.problems


@pytest.fixture(autouse=True)
def _needs_sign_in(console_app):
    skip_until_built(console_app, "auth.second_factor")


def signed_in(person):
    response = person.signs_in()
    assert response.status_code == 302, response.status_code
    return person


def test_the_policy_checker_rejects_a_loosened_policy():
    assert csp_problems("default-src 'none'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; "
                        "base-uri 'none'; form-action 'self'") == []
    assert csp_problems("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' https://cdn.example; "
                        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'") == [
        "script-src is not 'self'", "style-src is not 'self'",
        "script-src allows 'unsafe-inline'", "style-src allows https://cdn.example"]


def test_the_page_checker_finds_inline_code():
    parser = InlineCode()
    parser.feed('<p style="color:red" onclick="x()">a</p><style>p{}</style><script>alert(1)</script>'
                '<script src="https://cdn.example/x.js"></script><a href="javascript:x()">b</a>')
    assert parser.problems == ["style= on <p>", "onclick= on <p>", "a <style> element", "an inline <script>",
                               "a <script> with inline code", "<script src> from another origin: cdn.example",
                               "a javascript: URL on <a>"]


def test_every_answer_to_a_visitor_carries_the_strict_headers(console_app, route_values):
    visitor = console_app.test_client()
    problems = []
    for route in console_routes(console_app, route_values):
        response = visitor.open(route.path, method=route.method)
        problems += [f"{route} ({response.status_code}): {p}" for p in header_problems(response)]
    for path in ("/no-such-page", "/static/console/console.css", "/static/no-such-file.css"):
        response = visitor.get(path)
        problems += [f"GET {path} ({response.status_code}): {p}" for p in header_problems(response)]
    assert problems == []


def test_every_page_a_signed_in_admin_sees_has_strict_headers_and_no_inline_code(console_app, people, route_values):
    admin = signed_in(people.admin())
    csrf = admin.csrf()
    routes = sorted(console_routes(console_app, route_values), key=lambda r: r.endpoint == "auth.sign_out")
    problems, pages = [], 0
    for route in routes:
        if route.method == "GET":
            response = admin.get(route.path)
        else:
            response = admin.client.open(route.path, method=route.method, data={"csrf_token": csrf},
                                         headers={"X-CSRFToken": csrf})
        found = header_problems(response) + page_problems(response)
        problems += [f"{route} ({response.status_code}): {p}" for p in found]
        pages += response.mimetype == "text/html"
    assert pages >= 10, "too few pages were rendered to mean anything"
    assert problems == []


def test_the_pages_of_signing_in_and_out_have_no_inline_code(console_app, people, console, private_key):
    problems = []

    def check(label, response):
        problems.extend(f"{label} ({response.status_code}): {p}" for p in header_problems(response) + page_problems(response))

    visitor = console_app.test_client()
    check("sign-in", visitor.get("/sign-in"))
    newcomer = people.make(Role.HANDLER, with_totp=False)
    response = newcomer.post_form("/sign-in", {"username": newcomer.username, "password": newcomer.password})
    check("password step", response)
    check("set up a second factor", newcomer.get("/sign-in/set-up-second-factor"))
    handler = people.handler()
    handler.post_form("/sign-in", {"username": handler.username, "password": handler.password})
    check("second factor", handler.get("/sign-in/second-factor"))
    with console.db.session() as session:
        token = invite(session, private_key, "invitee", "In Vitee", Role.HANDLER, None, timedelta(hours=1)).token
        session.commit()
    check("enrolment", visitor.get(f"/enrol/{token}"))
    signed = signed_in(people.handler())
    signed.goes_idle(console.settings.idle_minutes + 1)
    check("signed out page", signed.get("/inbox"))
    assert problems == []


def test_audio_answers_carry_the_strict_headers_too(console_app, people, route_values):
    skip_until_built(console_app, "media.audio")
    handler = signed_in(people.handler())
    path = f"/media/takes/{route_values['recording_id']}/audio"
    for headers in ({}, {"Range": "bytes=0-99"}, {"Range": "bytes=100-"}):
        response = handler.get(path, headers=headers)
        assert response.status_code in (200, 206), (headers, response.status_code)
        assert header_problems(response) == [], headers


def test_no_template_has_inline_script_or_style():
    # The rendered walk above reaches most templates; this reads them all, reached or not.
    pattern = re.compile(r"<style\b|\sstyle\s*=|\son[a-z]+\s*=|<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
    found = [f"{path.relative_to(TEMPLATES)}: {match.group(0).strip()}"
             for path in sorted(TEMPLATES.rglob("*.html"))
             for match in pattern.finditer(path.read_text())]
    assert found == []


def cookies_through_sign_in_and_out(app, private_key) -> list[str]:
    people = People(app, private_key)
    person = people.handler()
    seen = []
    watched = person.client.open

    def open_and_watch(*args, **kwargs):
        response = watched(*args, **kwargs)
        seen.extend(response.headers.getlist("Set-Cookie"))
        return response

    person.client.open = open_and_watch
    assert signed_in(person)
    person.signs_out()
    return seen


@pytest.mark.parametrize("environment, secure", [("test", True), ("development", False)])
def test_the_session_cookie_is_httponly_strict_and_secure_outside_development(
        environment, secure, console_env, settings, private_key):
    app = create_app(ConsoleSettings.from_env({**console_env, "HOTLINE_ENV": environment}))
    try:
        cookies = cookies_through_sign_in_and_out(app, private_key)
        assert len(cookies) >= 3  # the visitor's, after the password, after the second factor, and the drop
        problems = []
        for cookie in cookies:
            name = cookie.split("=", 1)[0]
            attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
            if name != "hotline_console":
                problems.append(f"an unexpected cookie {name}")
            if "httponly" not in attributes or attributes.get("samesite") != "SameSite=Strict":
                problems.append(f"not HttpOnly + SameSite=Strict: {cookie.split('=')[0]}; {sorted(attributes)}")
            if ("secure" in attributes) != secure:
                problems.append(f"Secure is {'secure' in attributes} in {environment}")
        assert problems == []
        response = app.test_client().get("/sign-in")
        assert ("Strict-Transport-Security" in response.headers) == secure
    finally:
        app.extensions["console"].db.dispose()
