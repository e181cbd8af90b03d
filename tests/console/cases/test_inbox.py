"""The inbox: one row per case, metadata only, filtered, sorted and paged; it opens nothing."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import select

from jobs.worker import run_until_idle
from storage.models import AuditAction, AuditEntry, CaseStatus
from tests.console.cases.conftest import PAGE_SIZE
from tests.console.cases.helpers import Take, table_rows
from tests.support.audio import phone_wav
from tests.support.takes import recorded_take


def inbox_rows(person, query: str = "") -> list[dict]:
    response = person.get("/inbox" + query)
    assert response.status_code == 200
    return table_rows(response.get_data(as_text=True), "case-row")


def references(rows: list[dict]) -> list[str]:
    return [row["_attrs"]["data-reference"] for row in rows]


def at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=timezone.utc)  # December: London is on UTC


def test_each_case_is_one_row_with_what_a_handler_needs_to_pick_it(handler, people, cases):
    anonymous = cases.case(anonymous=True, category="bribery-corruption", received=at(1, 14, 7), takes=[
        Take("first part", seconds=30), Take(None, seconds=45, status="failed"),
        Take("recorded again", seconds=600, decision="discard"),
    ])
    named = cases.case(anonymous=False, category=None, received=at(2, 9, 31), urgent=True,
                       status=CaseStatus.IN_REVIEW, assignee_id=handler.user_id,
                       takes=[Take(None, seconds=5), Take("b", seconds=6), Take("c", seconds=7)])

    rows = {row["_attrs"]["data-reference"]: row for row in inbox_rows(handler)}

    assert set(rows) == {anonymous, named}
    row = rows[anonymous]
    assert row["received"] == "1 Dec 2026, 14:00–15:00"  # an anonymous call: the hour, never the minute
    assert "14:07" not in row["_text"]
    assert (row["category"], row["caller"], row["status"], row["assignee"]) == (
        "Bribery or corruption", "Anonymous", "New", "—")
    assert row["takes"] == "2 · 1:15"  # the discarded take is not counted
    assert row["transcription"] == "1 done, 1 failed"
    assert "urgent" not in row["_classes"]
    row = rows[named]
    assert row["received"] == "2 Dec 2026, 09:31"
    assert (row["category"], row["caller"], row["status"], row["assignee"]) == (
        "Not given", "Named", "In review", "Hana")
    assert row["takes"] == "3 · 0:18"
    assert row["transcription"] == "2 done, 1 pending"
    assert "urgent" in row["_classes"] and "Urgent" in row["flags"]


def test_urgent_cases_come_first_then_the_chosen_order(handler, cases):
    old_urgent = cases.case(received=at(1, 8, 0), urgent=True, status=CaseStatus.CLOSED)
    oldest = cases.case(received=at(1, 7, 0), status=CaseStatus.REFERRED)
    newest = cases.case(received=at(1, 10, 0), status=CaseStatus.IN_REVIEW)

    assert references(inbox_rows(handler)) == [old_urgent, newest, oldest]
    assert references(inbox_rows(handler, "?sort=oldest")) == [old_urgent, oldest, newest]
    assert references(inbox_rows(handler, "?sort=status")) == [old_urgent, newest, oldest]  # in review before referred


def test_filters_narrow_the_inbox(handler, colleague, cases):
    bribery_new = cases.case(category="bribery-corruption", assignee_id=handler.user_id)
    abuse_named = cases.case(category="domestic-abuse", anonymous=False, assignee_id=colleague.user_id)
    urgent_review = cases.case(category="discrimination", urgent=True, status=CaseStatus.IN_REVIEW)

    assert references(inbox_rows(handler, "?status=in-review")) == [urgent_review]
    assert references(inbox_rows(handler, "?category=domestic-abuse")) == [abuse_named]
    assert references(inbox_rows(handler, "?anonymity=named")) == [abuse_named]
    assert set(references(inbox_rows(handler, "?anonymity=anonymous"))) == {bribery_new, urgent_review}
    assert references(inbox_rows(handler, "?assignee=me")) == [bribery_new]
    assert references(inbox_rows(handler, "?assignee=unassigned")) == [urgent_review]
    assert references(inbox_rows(handler, f"?assignee={colleague.user_id}")) == [abuse_named]
    assert references(inbox_rows(handler, "?urgent=1")) == [urgent_review]
    assert references(inbox_rows(handler, "?anonymity=anonymous&status=new&assignee=me")) == [bribery_new]


def test_pages_and_counts_per_status(handler, cases):
    made = [cases.case(received=at(1, 1 + n, 0)) for n in range(PAGE_SIZE + 2)]
    reviewed = cases.case(received=at(1, 20, 0), status=CaseStatus.IN_REVIEW)
    newest_first = [reviewed] + made[::-1]

    first = handler.get("/inbox").get_data(as_text=True)
    second = handler.get("/inbox?page=2").get_data(as_text=True)

    assert references(table_rows(first, "case-row")) == newest_first[:PAGE_SIZE]
    assert references(table_rows(second, "case-row")) == newest_first[PAGE_SIZE:]
    assert "Page 1 of 2 · 6 cases" in first and 'href="/inbox?page=2"' in first
    assert "Page 2 of 2" in second
    assert 'data-status="new"' in first
    assert _count(first, "new") == PAGE_SIZE + 2 and _count(first, "in-review") == 1 and _count(first, "closed") == 0
    # A page past the end shows the last page rather than nothing.
    assert references(inbox_rows(handler, "?page=99")) == newest_first[PAGE_SIZE:]


def _count(html: str, status: str) -> int:
    import re

    match = re.search(r'data-status="' + status + r'"[^>]*>[^<]*<span class="count">(\d+)</span>', html)
    assert match, status
    return int(match.group(1))


def test_the_inbox_decrypts_nothing(handler, cases, monkeypatch):
    """With opening made impossible, the inbox still renders every row; the case page, which does open
    sealed items, proves the trap is set."""
    import console.keys

    opened = []

    def no_opening(*args, **kwargs):
        opened.append(1)
        raise AssertionError("the inbox opened a sealed item")

    monkeypatch.setattr(console.keys, "unseal", no_opening)
    monkeypatch.setattr(console.keys.Opener, "open", no_opening)
    reference = cases.case(anonymous=False, contact="+447700900111", takes=[Take("words spoken here")])
    handler.post_form(f"/cases/{reference}", {"text": "a sealed note"}, action=f"/cases/{reference}/notes")
    opened.clear()

    assert references(inbox_rows(handler)) == [reference]
    assert opened == []
    handler.get(f"/cases/{reference}")  # opens the note: it hits the trap
    assert opened


def test_new_since_you_last_looked_after_a_call_back(handler, colleague, hotline, fake_twilio):
    from ivr.desk import SqlCallDesk
    from ivr.events import RecordingEvent
    from storage.references import pin_for

    recorded_take(hotline, fake_twilio, phone_wav(1.0))
    run_until_idle(hotline.workshop)
    [row] = inbox_rows(handler)
    reference = row["_attrs"]["data-reference"]
    assert "is-new" in row["_classes"], "a case nobody has opened is new"

    handler.get(f"/cases/{reference}")
    [row] = inbox_rows(handler)
    assert "is-new" not in row["_classes"] and "New since you last looked" not in row["_text"]

    # The caller rings back, keys in the reference and PIN, and leaves a second take.
    call_sid = "CA" + "b" * 32
    sid, url = fake_twilio.add_recording(phone_wav(2.0), call_sid=call_sid)
    with hotline.db.session() as session:
        desk = SqlCallDesk(session, hotline.sealer, hotline.settings.secret_key)
        desk.start_call(call_sid)
        desk.remember_reference(call_sid, reference)
        assert desk.unlock(call_sid, pin_for(hotline.settings.secret_key, reference)).unlocked
        desk.recording_status(call_sid, RecordingEvent(sid, url, 2, "completed"))
        session.commit()
    run_until_idle(hotline.workshop)

    [row] = inbox_rows(handler)
    assert "is-new" in row["_classes"] and "New since you last looked" in row["flags"]
    assert row["takes"].startswith("2 ·")
    assert references(inbox_rows(handler, "?new=1")) == [reference]
    assert "is-new" in inbox_rows(colleague)[0]["_classes"]  # per person: the colleague never looked

    page = handler.get(f"/cases/{reference}").get_data(as_text=True)
    assert 'id="take-' in page
    [row] = inbox_rows(handler)
    assert "is-new" not in row["_classes"]
    assert inbox_rows(handler, "?new=1") == []


def test_each_inbox_view_is_audited_with_its_filters_and_page_only(handler, cases, console):
    cases.case()
    handler.get("/inbox?status=new&urgent=1&sort=oldest&assignee=me")

    with console.db.session() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == AuditAction.INBOX_VIEWED)).all()
    assert len(entries) == 1
    assert entries[0].actor_id == handler.user_id and entries[0].case_reference is None
    assert json.loads(entries[0].detail) == {
        "page": 1, "sort": "oldest", "status": "new", "urgent_only": True, "assignee": "me"}


ODD_QUERIES = ("?status=bogus", "?page=-1", "?page=abc", "?page=99999999999", "?assignee=somebody", "?assignee=99999",
               "?category=%3Cscript%3E", "?anonymity=both", "?sort=sideways", "?new=maybe&urgent=2", "?page=",
               "?status=new&status=closed", "?page=%00")


def test_odd_inbox_queries_get_a_page_not_an_error(handler, cases):
    cases.case()
    for query in ODD_QUERIES:
        response = handler.get("/inbox" + query)
        assert response.status_code == 200, query
        assert "<script>" not in response.get_data(as_text=True)
