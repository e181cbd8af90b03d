"""The case page: a summary, and a timeline of everything on the case in the order it happened."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from console.cases.services import TakeView, kept_takes
from storage.models import AuditAction, AuditEntry, Case, CaseView, utcnow
from tests.console.cases.helpers import Take, form_post, texts_of_class, timeline_kinds


def test_an_unknown_reference_gets_a_not_found_page(handler):
    for reference in ("12345678", "not-a-ref", "1" * 40):
        response = handler.get(f"/cases/{reference}")
        assert response.status_code == 404
        assert "There is no case with that reference" in response.get_data(as_text=True)


def test_the_timeline_holds_everything_in_order(handler, colleague, cases, console):
    started = utcnow() - timedelta(hours=2)
    reference = cases.case(anonymous=True, received=started, takes=[Take("first words", seconds=40, at=started)])
    page = f"/cases/{reference}"
    form_post(handler, page, f"{page}/notes", {"text": "Caller sounded frightened.\nCall back Tuesday."})
    form_post(handler, page, f"{page}/status", {"status": "in-review"})
    form_post(handler, page, f"{page}/assign", {"assignee": str(colleague.user_id)})
    form_post(handler, page, f"{page}/urgent", {"urgent": "1"})
    call_back = cases.add_take(reference, Take("more words", seconds=20, call="CA" + "c" * 32))
    cases.correct(call_back, "more wards", author_id=colleague.user_id)

    html = colleague.get(page).get_data(as_text=True)

    assert timeline_kinds(html) == ["take", "note", "status", "assignment", "urgent", "take", "correction"]
    assert texts_of_class(html, "note-text") == ["Caller sounded frightened.\nCall back Tuesday."]
    assert "Hana" in html.split('data-kind="note"', 1)[1].split("</li>", 1)[0]  # the note's author
    assert "New → <strong>In review</strong>" in html
    assert "Nobody → <strong>Cole</strong>" in html
    assert "Marked <strong>urgent</strong>" in html
    assert "Transcript of take 2 corrected (version 2)" in html
    assert f'id="take-{call_back}"' in html  # each take in its player
    assert "take 2, a call-back" in html and "take 1, a call-back" not in html
    assert html.count('class="player"') == 2
    assert '<script src="/static/console/player.js"></script>' in html


def test_a_take_from_a_later_call_is_a_call_back(cases, console):
    first_call = "CA" + "a" * 32
    reference = cases.case(anonymous=True, takes=[Take("one", call=first_call), Take("two", call=first_call, seconds=12)])
    later = cases.add_take(reference, Take(None, call="CA" + "d" * 32, seconds=9))

    with console.db.session() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        views = [view for _, view in kept_takes(session, case)]

    assert [(v.number, v.is_callback, v.duration_seconds) for v in views] == [(1, False, 30), (2, False, 12), (3, True, 9)]
    assert views[2] == TakeView(id=later, number=3, duration_seconds=9, transcription_status="pending",
                                is_callback=True, received_label=views[2].received_label)
    assert views[2].received_label.endswith(":00")  # anonymous: the hour only


def test_opening_a_case_is_audited_and_remembered(handler, cases, console):
    reference = cases.case()
    handler.get(f"/cases/{reference}")

    with console.db.session() as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == AuditAction.CASE_VIEWED)).all()
        case = session.scalar(select(Case).where(Case.reference == reference))
        view = session.get(CaseView, (handler.user_id, case.id))
    assert (entry.actor_id, entry.case_reference) == (handler.user_id, reference)
    assert view is not None and utcnow() - view.last_viewed_at < timedelta(minutes=1)


def test_only_supervisors_get_a_link_to_the_case_audit_trail(handler, supervisor, cases):
    reference = cases.case()
    assert f"/audit/cases/{reference}" not in handler.get(f"/cases/{reference}").get_data(as_text=True)
    assert f'href="/audit/cases/{reference}"' in supervisor.get(f"/cases/{reference}").get_data(as_text=True)


def test_a_named_callers_page_offers_a_reveal_and_an_anonymous_one_does_not(handler, cases):
    named = cases.case(anonymous=False, contact="+447700900222")
    anonymous = cases.case(anonymous=True)
    assert 'id="contact-form"' in handler.get(f"/cases/{named}").get_data(as_text=True)
    html = handler.get(f"/cases/{anonymous}").get_data(as_text=True)
    assert 'id="contact-form"' not in html and "there is no contact number" in html
    assert "+447700900222" not in handler.get(f"/cases/{named}").get_data(as_text=True)
