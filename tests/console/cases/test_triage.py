"""Triage: status moves along the workflow only, closing and reopening need a sealed reason; assignment
and the urgent flag. Every change leaves a case event and one audit entry."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from console.accounts.services import disable
from storage.models import (
    AuditAction, AuditEntry, Case, CaseEvent, CaseEventKind, CaseStatus, SealedItem, User,
)
from tests.console.cases.helpers import form_post, messages, table_rows, texts_of_class


def post(person, reference: str, action: str, data: dict):
    page = f"/cases/{reference}"
    return form_post(person, page, f"{page}/{action}", data, follow_redirects=True)


def status_of(console, reference: str) -> CaseStatus:
    with console.db.session() as session:
        return session.scalar(select(Case.status).where(Case.reference == reference))


def events(console, reference: str, kind: CaseEventKind) -> list[CaseEvent]:
    with console.db.session() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        return session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.kind == kind)
                               .order_by(CaseEvent.id)).all()


def audit(console, action: AuditAction) -> list[dict]:
    with console.db.session() as session:
        return [json.loads(entry.detail) | {"_ref": entry.case_reference, "_actor": entry.actor_id}
                for entry in session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))]


def test_a_case_moves_through_the_workflow_and_back(handler, cases, console):
    reference = cases.case()
    steps = [
        ({"status": "in-review"}, CaseStatus.IN_REVIEW),
        ({"status": "referred"}, CaseStatus.REFERRED),
        ({"status": "closed", "reason": "Referred to the IOPC; they have it now."}, CaseStatus.CLOSED),
        ({"status": "in-review", "reason": "The caller rang back with more."}, CaseStatus.IN_REVIEW),
        ({"status": "no-further-action"}, CaseStatus.NO_FURTHER_ACTION),
        ({"status": "closed", "reason": "Nothing we can act on."}, CaseStatus.CLOSED),
    ]
    for form, expected in steps:
        response = post(handler, reference, "status", form)
        assert messages(response) == ["Status changed."]
        assert status_of(console, reference) is expected

    changes = events(console, reference, CaseEventKind.STATUS)
    assert [(e.old_value, e.new_value) for e in changes] == [
        ("new", "in-review"), ("in-review", "referred"), ("referred", "closed"), ("closed", "in-review"),
        ("in-review", "no-further-action"), ("no-further-action", "closed")]
    assert [e.item_id is not None for e in changes] == [False, False, True, True, False, True]
    assert audit(console, AuditAction.STATUS_CHANGED) == [  # statuses only: never the reason's words
        {"from": e.old_value, "to": e.new_value, "_ref": reference, "_actor": handler.user_id} for e in changes]
    with console.db.session() as session:
        kinds = {session.get(SealedItem, e.item_id).kind for e in changes if e.item_id}
    assert kinds == {"status-reason"}
    html = handler.get(f"/cases/{reference}").get_data(as_text=True)
    assert "Reason: Referred to the IOPC; they have it now." in texts_of_class(html, "status-reason")


@pytest.mark.parametrize("start, form, message", [
    (CaseStatus.NEW, {"status": "closed", "reason": "done"}, "A case that is New can only go to In review."),
    (CaseStatus.NEW, {"status": "referred"}, "A case that is New can only go to In review."),
    (CaseStatus.IN_REVIEW, {"status": "new"}, "A case that is In review can only go to Referred or No further action."),
    (CaseStatus.REFERRED, {"status": "closed"}, "Give a reason to close the case."),
    (CaseStatus.REFERRED, {"status": "closed", "reason": "   \r\n "}, "Give a reason to close the case."),
    (CaseStatus.CLOSED, {"status": "in-review"}, "Give a reason to reopen the case."),
    (CaseStatus.CLOSED, {"status": "referred", "reason": "x"}, "A case that is Closed can only go to In review."),
    (CaseStatus.NEW, {"status": "new"}, "The case is already New."),
    (CaseStatus.NEW, {"status": "finished"}, "Choose a status from the list."),
    (CaseStatus.NEW, {}, "Choose a status from the list."),
    (CaseStatus.NEW, {"status": "in-review", "current": "in-review"}, "Someone else changed this case's status"),
    (CaseStatus.NEW, {"status": "in-review", "current": "bogus"}, "The form was not understood"),
    (CaseStatus.REFERRED, {"status": "closed", "reason": "x" * 2001}, "A reason is at most 2,000 characters."),
])
def test_a_refused_status_change_says_why_and_changes_nothing(handler, cases, console, start, form, message):
    reference = cases.case(status=start)
    response = post(handler, reference, "status", form)

    assert response.status_code == 200
    assert any(shown.startswith(message) for shown in messages(response)), messages(response)
    assert status_of(console, reference) is start
    assert events(console, reference, CaseEventKind.STATUS) == []
    assert audit(console, AuditAction.STATUS_CHANGED) == []
    with console.db.session() as session:
        assert session.scalars(select(SealedItem).where(SealedItem.kind == "status-reason")).all() == []


def test_the_status_form_offers_only_the_next_steps(handler, cases):
    html = handler.get(f"/cases/{cases.case(status=CaseStatus.IN_REVIEW)}").get_data(as_text=True)
    select_html = html.split('id="status"', 1)[1].split("</select>", 1)[0]
    assert 'value="referred"' in select_html and 'value="no-further-action"' in select_html
    assert 'value="closed"' not in select_html and 'value="new"' not in select_html
    assert 'name="reason" id="reason"' in html


def test_a_case_is_assigned_to_an_active_account_or_to_nobody(handler, colleague, people, cases, console):
    reference = cases.case()
    assert messages(post(handler, reference, "assign", {"assignee": str(colleague.user_id)})) == ["Assignment changed."]
    with console.db.session() as session:
        assert session.scalar(select(Case.assignee_id).where(Case.reference == reference)) == colleague.user_id
    assert table_rows(handler.get("/inbox").get_data(as_text=True), "case-row")[0]["assignee"] == "Cole"

    assert messages(post(handler, reference, "assign", {"assignee": ""})) == ["Assignment changed."]
    with console.db.session() as session:
        assert session.scalar(select(Case.assignee_id).where(Case.reference == reference)) is None

    gone = people.handler("gone")
    with console.db.session() as session:
        disable(session.get(User, gone.user_id))
        session.commit()
    for form in ({"assignee": str(gone.user_id)}, {"assignee": "424242"}):
        assert messages(post(handler, reference, "assign", form)) == ["A case can only be assigned to an active account."]
    assert messages(post(handler, reference, "assign", {"assignee": "Cole"})) == ["Choose a person from the list."]

    assigned = events(console, reference, CaseEventKind.ASSIGNMENT)
    assert [(e.old_value, e.new_value) for e in assigned] == [(None, str(colleague.user_id)), (str(colleague.user_id), None)]
    assert [(d["from"], d["to"]) for d in audit(console, AuditAction.ASSIGNMENT_CHANGED)] == [
        (None, colleague.user_id), (colleague.user_id, None)]


def test_the_urgent_flag_sorts_a_case_first_and_is_recorded(handler, cases, console):
    older = cases.case()
    newer = cases.case()
    assert [r["_attrs"]["data-reference"] for r in table_rows(handler.get("/inbox").get_data(as_text=True), "case-row")][0] == newer

    assert messages(post(handler, older, "urgent", {"urgent": "1"})) == ["Urgent flag changed."]
    rows = table_rows(handler.get("/inbox").get_data(as_text=True), "case-row")
    assert rows[0]["_attrs"]["data-reference"] == older and "urgent" in rows[0]["_classes"]
    assert messages(post(handler, older, "urgent", {"urgent": "1"})) == ["The case is already marked so."]
    assert messages(post(handler, older, "urgent", {"urgent": "0"})) == ["Urgent flag changed."]

    assert [(e.old_value, e.new_value) for e in events(console, older, CaseEventKind.URGENT)] == [
        ("false", "true"), ("true", "false")]
    assert [d["urgent"] for d in audit(console, AuditAction.URGENT_CHANGED)] == [True, False]
