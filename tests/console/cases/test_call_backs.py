"""Failed PINs as handlers see them: a case's failed attempts (a count, and the hours they fell in), the
"Unlock call-backs" button and the operator's `unlock` command (both audited), and the count across all
references on the inbox."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from storage.cases import UNLOCK_ALERT_THRESHOLD, UNLOCK_FAILURE_LIMIT, unlock_case
from storage.models import AuditAction, ReferenceLock, utcnow
from storage.references import pin_for
from tests.console.cases.helpers import form_post, messages
from tests.console.support import audit_entries


def _fail(hotline, reference: str, times: int, at=None) -> None:
    with hotline.db.session() as session:
        for _ in range(times):
            unlock_case(session, hotline.settings.secret_key, reference, "000000", at)


def _owner_gets_in(hotline, reference: str, at=None) -> bool:
    with hotline.db.session() as session:
        return unlock_case(session, hotline.settings.secret_key, reference,
                           pin_for(hotline.settings.secret_key, reference), at).case is not None


def _call_backs_panel(html: str) -> str:
    assert 'id="call-backs"' in html, "the case page shows no failed PIN attempts"
    return html.split('id="call-backs"', 1)[1].split("</div>", 1)[0]


def test_a_locked_reference_shows_its_failures_by_the_hour_and_a_handler_unlocks_it(handler, cases, console, hotline):
    reference = cases.case(anonymous=True)
    now = utcnow()
    _fail(hotline, reference, 4, now - timedelta(days=1))
    _fail(hotline, reference, UNLOCK_FAILURE_LIMIT - 4, now)
    assert not _owner_gets_in(hotline, reference, now)

    page = f"/cases/{reference}"
    panel = _call_backs_panel(handler.get(page).get_data(as_text=True))
    assert f"{UNLOCK_FAILURE_LIMIT + 1} failed PIN attempts" in panel and "call-backs are locked" in panel
    hours = re.findall(r"<li>([^<]+): (\d+)</li>", panel)
    assert [int(count) for _, count in hours] == [4, UNLOCK_FAILURE_LIMIT - 4 + 1]
    assert all(re.search(r", \d\d:00–\d\d:00$", label) for label, _ in hours), hours  # to the hour, no minutes
    assert "Unlock call-backs" in panel

    response = form_post(handler, page, f"{page}/unlock", {}, follow_redirects=True)
    assert any("Call-backs unlocked" in message for message in messages(response))
    assert 'id="call-backs"' not in response.get_data(as_text=True)
    [entry] = audit_entries(console, AuditAction.REFERENCE_UNLOCKED)
    assert (entry.actor_id, entry.case_reference) == (handler.user_id, reference)
    assert entry.detail == f'{{"failures":{UNLOCK_FAILURE_LIMIT + 1}}}'
    assert _owner_gets_in(hotline, reference)


def test_a_case_nobody_guessed_at_shows_no_call_back_panel_and_has_nothing_to_unlock(handler, cases, console):
    reference = cases.case()
    page = f"/cases/{reference}"
    assert 'id="call-backs"' not in handler.get(page).get_data(as_text=True)
    response = form_post(handler, page, f"{page}/unlock", {}, follow_redirects=True)
    assert messages(response) == ["There are no failed PIN attempts on this case to clear."]
    assert audit_entries(console, AuditAction.REFERENCE_UNLOCKED) == []


def test_a_few_failures_show_before_the_lock(handler, cases, hotline):
    reference = cases.case(anonymous=False)
    _fail(hotline, reference, 2)
    panel = _call_backs_panel(handler.get(f"/cases/{reference}").get_data(as_text=True))
    assert "2 failed PIN attempts" in panel and f"(locked at {UNLOCK_FAILURE_LIMIT})" in panel
    assert "call-backs are locked" not in panel


def test_the_inbox_shows_failures_across_all_references_this_hour(handler, cases, hotline):
    assert 'id="pin-failures"' not in handler.get("/inbox").get_data(as_text=True)
    first, second = cases.case(), cases.case()
    _fail(hotline, first, 2)
    _fail(hotline, "12345671", 1)  # a reference with no case counts too
    html = handler.get("/inbox").get_data(as_text=True)
    notice = html.split('id="pin-failures"', 1)[1].split("</p>", 1)[0]
    assert "3 failed PIN attempts across all references this hour" in notice and "guessing" not in notice
    for _ in range(UNLOCK_ALERT_THRESHOLD // UNLOCK_FAILURE_LIMIT + 1):
        _fail(hotline, second, UNLOCK_FAILURE_LIMIT)
    html = handler.get("/inbox").get_data(as_text=True)
    assert 'class="panel errors" id="pin-failures"' in html and "someone may be guessing" in html
    assert first not in html.split('id="pin-failures"', 1)[1].split("</p>", 1)[0]


def test_an_operator_unlocks_a_reference_from_the_command_line(console_app, console, cases, hotline):
    reference = cases.case()
    _fail(hotline, reference, UNLOCK_FAILURE_LIMIT)
    runner = console_app.test_cli_runner()

    result = runner.invoke(args=["unlock", reference])
    assert result.exit_code == 0, result.output
    assert f"{UNLOCK_FAILURE_LIMIT} failed PIN attempts cleared" in result.output
    [entry] = audit_entries(console, AuditAction.REFERENCE_UNLOCKED)
    assert (entry.actor, entry.case_reference) == ("operator", reference)
    with console.db.session() as session:
        assert session.scalar(select(ReferenceLock).where(ReferenceLock.reference == reference)) is None
    assert _owner_gets_in(hotline, reference)

    again = runner.invoke(args=["unlock", reference])
    assert again.exit_code != 0 and "nothing to unlock" in again.output
    unknown = runner.invoke(args=["unlock", "12345671"])
    assert unknown.exit_code != 0 and "no case with that reference" in unknown.output
    assert len(audit_entries(console, AuditAction.REFERENCE_UNLOCKED)) == 1
