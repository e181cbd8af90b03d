"""A supervisor's retention page: what is due for deletion and when; a legal hold, with a sealed reason,
that the workers' purge respects; and handlers kept out."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from console.keys import Opener
from jobs.retention import purge
from storage.cases import event_owner
from storage.models import AuditAction, BlobRow, Case, CaseEvent, CaseEventKind, CaseStatus, utcnow
from tests.console.support import audit_entries
from tests.storage.test_retention import MARCH
from tests.support.retention import a_worked_case

REASON = "Solicitors' letter 2026/77: preserve everything"


def rows(html: str) -> dict[str, str]:
    """reference -> the row's state class, as the page lists them."""
    return dict((reference, state) for state, reference in
                re.findall(r'<tr class="retention-(\w+)" data-reference="(\d{8})">', html))


def purge_now(hotline):
    return purge(hotline.db, hotline.blobs, hotline.periods, hotline.settings.retention)


def test_a_supervisor_sees_what_is_due_and_when(console_app, hotline, people):
    due = a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 120)
    later = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 30)
    supervisor = people.supervisor()
    supervisor.signs_in()
    page = supervisor.get("/retention")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert rows(html) == {due: "due", later: "kept"}
    assert list(rows(html)) == [due, later]  # soonest first
    assert "1 due at the next purge" in html and "(at the next purge)" in html
    (viewed,) = audit_entries(people.console, AuditAction.RETENTION_VIEWED)
    assert viewed.detail == '{"due":1,"held":0,"listed":2}'


def test_a_handler_is_kept_out(console_app, people):
    handler = people.handler()
    handler.signs_in()
    assert handler.get("/retention").status_code == 403


def test_a_legal_hold_keeps_a_due_case_from_the_purge_with_its_reason_sealed(console_app, console, hotline, people,
                                                                             private_key):
    reference = a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 120)
    supervisor = people.supervisor()
    supervisor.signs_in()
    response = supervisor.post_form("/retention", {"reference": reference, "reason": REASON},
                                    action="/retention/hold", follow_redirects=True)
    assert "The case is on legal hold" in response.get_data(as_text=True)
    assert rows(response.get_data(as_text=True)) == {reference: "held"}

    assert purge_now(hotline)["purged"] == 0
    (placed,) = audit_entries(console, AuditAction.LEGAL_HOLD_PLACED)
    assert placed.case_reference == reference and REASON not in placed.detail
    with console.db.session() as session:
        event = session.scalar(select(CaseEvent).where(CaseEvent.kind == CaseEventKind.LEGAL_HOLD))
        assert placed.detail == f'{{"reason_item":{event.item_id}}}'
        assert all(REASON.encode() not in data for data in session.scalars(select(BlobRow.data)))
        opener = Opener(private_key, console.blobs, console.periods)
        assert opener.open(session, event.item, event_owner(event.id)).decode() == REASON

    # Lifted: the case is kept 30 days more, however overdue, then goes.
    response = supervisor.post_form("/retention", {"reason": "Proceedings ended"},
                                    action=f"/retention/cases/{reference}/lift", follow_redirects=True)
    assert "The legal hold is lifted" in response.get_data(as_text=True)
    assert rows(response.get_data(as_text=True)) == {reference: "kept"}
    assert purge_now(hotline)["purged"] == 0
    assert purge(hotline.db, hotline.blobs, hotline.periods, hotline.settings.retention,
                 utcnow() + timedelta(days=31))["purged"] == 1
    with console.db.session() as session:
        assert session.scalar(select(Case.id).where(Case.reference == reference)) is None
    assert [entry.action for entry in audit_entries(console) if entry.case_reference == reference][-1] \
        is AuditAction.CASE_PURGED


def test_a_hold_needs_a_reason_and_a_case(console_app, hotline, people):
    reference = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    supervisor = people.supervisor()
    supervisor.signs_in()
    page = supervisor.post_form("/retention", {"reference": reference, "reason": ""}, action="/retention/hold",
                                follow_redirects=True)
    assert "Give the reason for the legal hold" in page.get_data(as_text=True)
    assert supervisor.post_form("/retention", {"reference": "12345678", "reason": "x"},
                                action="/retention/hold").status_code == 404
    assert audit_entries(people.console, AuditAction.LEGAL_HOLD_PLACED) == []
