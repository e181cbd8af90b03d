"""No form or JSON body, however malformed, makes the console fail with a 5xx, and a refused one leaves
no half-written row behind. Every POST route in the URL map is fed garbage (Hypothesis, derandomised so
CI sees the same examples every run), by a visitor its policy lets in, with a valid CSRF token."""
from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, example, given, settings, strategies as st
from sqlalchemy import func, select

from console.access import Audience, policy_of
from console.accounts.services import invite
from storage.models import AuditAction, AuditEntry, Base, Role
from tests.console.routes import Route, console_routes
from tests.console.support import csrf_token, skip_until_built

TOTAL_EXAMPLES = 300
# The names the console's forms and JSON bodies use, so garbage reaches the parsers, not only the
# "missing field" branch.
FIELDS = ["username", "password", "code", "text", "reason", "status", "current", "assignee", "urgent", "q",
          "role", "display_name", "new", "confirm", "label", "credential", "base_version", "start", "end"]
# Written by refusals too (the session, the failure's own audit entry), so not counted as half-written.
NOT_COUNTED = {"audit_log", "audit_head", "console_sessions"}
FAILURE_ENTRIES = {AuditAction.SIGN_IN_FAILED, AuditAction.SECOND_FACTOR_FAILED, AuditAction.ACCOUNT_LOCKED}

awkward_text = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["", " ", "0", "-1", "1" * 40, "new", "closed", "in-review", "admin", "handler", "true", "on",
                     "\x00", "a\x00b", "\u202e", "<script>x</script>", "%00", "9" * 20, "1e309", "NaN", "x" * 3000]),
)
forms = st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=12)), awkward_text, max_size=6)
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                        st.floats(allow_nan=True, allow_infinity=True), awkward_text)
json_documents = st.recursive(
    json_leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), inner, max_size=5)),
    max_leaves=12,
)
bodies = st.one_of(
    st.tuples(st.just("form"), forms),
    st.tuples(st.just("json"), json_documents),
    st.tuples(st.just("raw json"), st.binary(max_size=200)),
)


def row_counts(console) -> dict[str, int]:
    with console.db.session() as session:
        return {table.name: session.scalar(select(func.count()).select_from(table))
                for table in Base.metadata.sorted_tables if table.name not in NOT_COUNTED}


def newest_entry(console) -> int:
    with console.db.session() as session:
        return session.scalar(select(func.max(AuditEntry.id))) or 0


def entries_since(console, seq: int) -> set[AuditAction]:
    with console.db.session() as session:
        return set(session.scalars(select(AuditEntry.action).where(AuditEntry.id > seq)))


def posts(client, route: Route, csrf: str, body: tuple[str, object]):
    kind, content = body
    headers = {"X-CSRFToken": csrf}
    if kind == "form":
        return client.post(route.path, data={**content, "csrf_token": csrf}, headers=headers)
    if kind == "json":
        return client.post(route.path, json=content, headers=headers)
    return client.post(route.path, data=content, headers={**headers, "Content-Type": "application/json"})


def test_no_post_route_fails_on_garbage_or_leaves_half_a_change(console_app, console, people, private_key, route_values):
    skip_until_built(console_app, "auth.second_factor")
    with console.db.session() as session:
        route_values["token"] = invite(session, private_key, "fuzzed-invitee", "Fuzzed Invitee", Role.HANDLER, None,
                                       timedelta(hours=1)).token
        session.commit()
    admin = people.admin()
    admin.signs_in()
    halfway = people.handler()
    halfway.post_form("/sign-in", {"username": halfway.username, "password": halfway.password})

    def browser_for(route: Route) -> tuple[object, str]:
        with console_app.app_context():
            audience = policy_of(route.endpoint).audience
        if audience is Audience.PUBLIC:
            visitor = console_app.test_client()
            page = visitor.get("/sign-in")
            return visitor, csrf_token(page.get_data(as_text=True))
        if audience is Audience.SECOND_FACTOR:
            return halfway.client, halfway.csrf("/sign-in/second-factor")
        return admin.client, admin.csrf()

    # Signing out ends the session the other routes are fed through, so it goes last.
    routes = sorted((r for r in console_routes(console_app, route_values) if r.method == "POST"),
                    key=lambda r: r.endpoint == "auth.sign_out")
    assert len(routes) >= 5
    per_route = max(8, TOTAL_EXAMPLES // len(routes))
    problems: list[str] = []

    for route in routes:
        client, csrf = browser_for(route)

        @settings(max_examples=per_route, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(body=bodies)
        @example(body=("json", [1, "x"]))  # a JSON array where an object is expected
        @example(body=("json", {name: {"nested": [1]} for name in FIELDS}))  # objects where strings are expected
        @example(body=("form", {name: "a\x00b" for name in FIELDS}))  # NUL: PostgreSQL refuses it in text
        @example(body=("raw json", b'{"unclosed": '))
        def feed(body):
            counts, seq = row_counts(console), newest_entry(console)
            response = posts(client, route, csrf, body)
            status = response.status_code
            if status >= 500:
                problems.append(f"{route}: {status} for {body!r:.300}")
            elif 400 <= status < 500:
                if row_counts(console) != counts:
                    problems.append(f"{route}: {status} but rows changed for {body!r:.300}")
                written = entries_since(console, seq) - FAILURE_ENTRIES
                if written:
                    problems.append(f"{route}: {status} but audited {sorted(a.value for a in written)}")

        feed()
    assert problems == [], "\n".join(problems[:40])


def test_the_feed_would_see_a_server_error(console_app):
    # The checker on a route that fails: the guard lets a signed-out POST to a public route through.
    from console.access import public

    def broken():
        raise RuntimeError("a bug")

    console_app.add_url_rule("/broken-for-the-test", "broken_for_the_test", public(broken), methods=["POST"])
    console_app.config["WTF_CSRF_ENABLED"] = False
    assert console_app.test_client().post("/broken-for-the-test", data={}).status_code == 500
