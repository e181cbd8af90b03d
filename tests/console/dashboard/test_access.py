"""Who may see the dashboard, that looking is audited, and that it shows no report content."""
from __future__ import annotations

import json
from datetime import timedelta

from console.access import Audience, Policy, policy_of
from storage.models import AuditAction, Role, utcnow
from tests.console.dashboard.support import take
from tests.console.support import audit_entries


def test_supervisors_and_admins_see_the_dashboard_and_handlers_are_refused(console_app, people, supervisor, handler):
    admin = people.admin("ada")
    admin.signs_in()

    assert supervisor.get("/dashboard").status_code == 200
    assert admin.get("/dashboard").status_code == 200
    refused = handler.get("/dashboard")
    assert refused.status_code == 403 and "This page is for another role" in refused.get_data(as_text=True)
    signed_out = console_app.test_client().get("/dashboard")
    assert signed_out.status_code == 302 and signed_out.headers["Location"].endswith("/sign-in")

    # Only those who may open it are shown the link.
    assert 'href="/dashboard"' in supervisor.get("/inbox").get_data(as_text=True)
    assert 'href="/dashboard"' not in handler.get("/inbox").get_data(as_text=True)
    with console_app.app_context():  # pinned, as tests/console/test_authorisation.py pins audit.*
        assert policy_of("dashboard.dashboard") == Policy(Audience.SIGNED_IN, Role.SUPERVISOR)


def test_each_look_is_audited_with_the_span_and_a_refused_or_bad_one_is_not(console, supervisor, handler):
    assert supervisor.get("/dashboard?weeks=26").status_code == 200
    assert handler.get("/dashboard").status_code == 403
    bad = supervisor.get("/dashboard?weeks=7")
    assert bad.status_code == 400
    assert "Choose how many weeks to show from the list: 4, 12, 26, 52." in bad.get_data(as_text=True)
    for nonsense in ("-1", "12abc", "１２", "9" * 40):
        assert supervisor.get("/dashboard", query_string={"weeks": nonsense}).status_code == 400

    entries = audit_entries(console, AuditAction.DASHBOARD_VIEWED)
    assert [(entry.actor_id, entry.case_reference, json.loads(entry.detail)) for entry in entries] == [
        (supervisor.user_id, None, {"weeks": 26})]


def test_the_dashboard_opens_nothing_and_shows_no_report_content(monkeypatch, supervisor, line):
    now = utcnow()
    said = "sergeant Quillford took the envelope behind Marbury station"
    named = line.case(anonymous=False, received=now - timedelta(days=2), contact="+447700900123",
                      takes=[take(spoken=said, seconds=40)])
    anonymous = line.case(received=now - timedelta(hours=3), takes=[take(spoken="collar number 4567 at Thornwick")])
    line.call_back(now - timedelta(hours=1), named)

    def refuse(*args, **kwargs):
        raise AssertionError("the dashboard opened a sealed item")

    monkeypatch.setattr("console.keys.Opener.open", refuse)
    response = supervisor.get("/dashboard")
    assert response.status_code == 200
    html = response.get_data(as_text=True)

    for content in (named, anonymous, "+447700900123", "7700900123", "Quillford", "envelope", "Marbury",
                    "4567", "Thornwick"):
        assert content not in html, f"the dashboard shows {content!r}"
    assert "/cases/" not in html  # no link to any one case either


def test_the_charts_need_no_inline_style_or_script_under_the_console_s_csp(supervisor, line):
    line.case(received=utcnow() - timedelta(hours=3))
    response = supervisor.get("/dashboard")
    html = response.get_data(as_text=True)

    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "<svg" in html and 'fill="#' in html  # colours as SVG presentation attributes
    assert "style=" not in html and "<script" not in html and "<style" not in html
    assert 'href="/static/console/dashboard.css"' in html
