"""No case form answers bad input with a server error: every one gets a page that says what was wrong."""
from __future__ import annotations

import pytest

from tests.console.cases.helpers import form_post, messages

JUNK = [
    {},
    {"status": "closed", "reason": "\x00" * 50},
    {"status": ["in-review", "closed"], "current": "new"},
    {"assignee": "-1", "urgent": "☃", "text": "\ud800".encode("utf-8", "surrogatepass").decode("latin-1")},
    {"assignee": "9" * 30, "urgent": "", "text": "ok", "reason": "r" * 50_000},
    {"status": "IN-REVIEW", "assignee": "1.5", "urgent": "TRUE", "text": "<script>alert(1)</script>"},
]
ACTIONS = ["status", "assign", "urgent", "notes", "contact"]


@pytest.mark.parametrize("action", ACTIONS)
def test_junk_posted_to_a_case_form_never_breaks_it(handler, cases, action):
    reference = cases.case(anonymous=False, contact="+447700900333")
    for data in JUNK:
        response = form_post(handler, f"/cases/{reference}", f"/cases/{reference}/{action}", data)
        assert response.status_code < 500, (action, data, response.status_code)
        assert "<script>alert(1)</script>" not in response.get_data(as_text=True)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_form_for_an_unknown_case_gets_not_found(handler, action):
    for reference in ("12345678", "x" * 300, "..%2f..%2fetc"):
        response = form_post(handler, "/inbox", f"/cases/{reference}/{action}", {"text": "hello", "reason": "r"})
        assert response.status_code == 404, reference


def test_a_form_without_its_csrf_token_is_refused_plainly(handler, cases):
    reference = cases.case()
    for action in ACTIONS:
        response = handler.client.post(f"/cases/{reference}/{action}", data={"text": "hello", "status": "in-review"})
        assert response.status_code == 400
        assert "That form had expired or was not sent from this console" in response.get_data(as_text=True)
    assert handler.client.post("/search", data={"q": "hello"}).status_code == 400


def test_the_search_form_copes_with_junk(handler, cases):
    cases.case()
    for q in ["\x00", "a" * 10_000, "é" * 150, "%", "* OR 1=1 --", ["one", "two"]]:
        response = form_post(handler, "/search", "/search", {"q": q})
        assert response.status_code in (200, 400, 413), q


def test_a_message_never_repeats_what_was_typed(handler, cases):
    reference = cases.case(anonymous=True)
    typed = "secret words from the caller"
    response = form_post(handler, f"/cases/{reference}", f"/cases/{reference}/status",
                         {"status": "closed", "reason": typed}, follow_redirects=True)
    assert messages(response) and all(typed not in message for message in messages(response))
