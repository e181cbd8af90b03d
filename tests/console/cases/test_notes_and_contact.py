"""Notes are sealed the moment they are written; a named caller's number is shown only when asked for
with a reason, which is sealed and audited."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select

from storage.models import AuditAction, AuditEntry, CaseEvent, CaseEventKind, ConsoleSession, SealedItem
from tests.console.cases.helpers import form_post, messages, texts_of_class
from tests.support.takes import stored_case_with_contact

NOTE = "Mentions sergeant Quillfeather at the Marrowby custody suite"


def every_stored_value(console) -> bytes:
    """Every row of every table, as the database hands it out."""
    metadata = MetaData()
    metadata.reflect(console.db.engine)
    found = []
    with console.db.engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(table.select()):
                for value in row:
                    found.append(value if isinstance(value, bytes) else str(value).encode())
    return b"\n".join(found)


def raw_database_files(console, request) -> bytes:
    """The database's bytes on disk (SQLite's file and its log; PostgreSQL's whole data folder)."""
    url = console.db.url
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    from sqlalchemy import text

    with console.db.engine.connect() as connection:
        connection.execute(text("CHECKPOINT"))
    server = request.getfixturevalue("postgres_server")
    return b"".join(p.read_bytes() for p in (server.root / "data").rglob("*") if p.is_file())


def test_a_note_is_sealed_with_its_author_and_shown_on_the_case(handler, colleague, cases, console, request):
    reference = cases.case()
    response = form_post(handler, f"/cases/{reference}", f"/cases/{reference}/notes", {"text": NOTE},
                         follow_redirects=True)
    assert messages(response) == ["Note added."]

    html = colleague.get(f"/cases/{reference}").get_data(as_text=True)
    assert texts_of_class(html, "note-text") == [NOTE]
    note_entry = html.split('data-kind="note"', 1)[1].split("</li>", 1)[0]
    assert "Hana" in note_entry

    with console.db.session() as session:
        [event] = session.scalars(select(CaseEvent).where(CaseEvent.kind == CaseEventKind.NOTE)).all()
        item = session.get(SealedItem, event.item_id)
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == AuditAction.NOTE_ADDED)).all()
    assert (event.actor_id, item.kind) == (handler.user_id, "note")
    assert json.loads(entry.detail) == {"item": item.id}
    word = b"Quillfeather"
    assert word not in every_stored_value(console)
    raw = raw_database_files(console, request)
    assert reference.encode() in raw  # the bytes read are the ones just written...
    assert word not in raw  # ...and the note is not among them in the clear


@pytest.mark.parametrize("text, message", [
    ("", "Write something in the note first."),
    (" \n\t ", "Write something in the note first."),
    ("\x00\x01", "Write something in the note first."),
    ("x" * 10_001, "A note is at most 10,000 characters; nothing was saved."),
])
def test_a_note_that_is_empty_or_too_long_is_refused(handler, cases, console, text, message):
    reference = cases.case()
    response = form_post(handler, f"/cases/{reference}", f"/cases/{reference}/notes", {"text": text},
                         follow_redirects=True)
    assert response.status_code == 200 and messages(response) == [message]
    with console.db.session() as session:
        assert session.scalars(select(CaseEvent)).all() == []
        assert session.scalars(select(SealedItem).where(SealedItem.kind == "note")).all() == []


def test_a_note_of_exactly_ten_thousand_characters_is_kept(handler, cases):
    reference = cases.case()
    text = ("word " * 2000)[:10_000]
    form_post(handler, f"/cases/{reference}", f"/cases/{reference}/notes", {"text": text.strip() + "w"})
    assert texts_of_class(handler.get(f"/cases/{reference}").get_data(as_text=True), "note-text") == [text.strip() + "w"]


def test_the_contact_number_is_shown_only_when_asked_for_with_a_reason(handler, hotline, fake_twilio, console):
    reference, _ = stored_case_with_contact(hotline, fake_twilio)
    page = f"/cases/{reference}"
    number = "+447700900456"
    assert number not in handler.get(page).get_data(as_text=True)

    refused = form_post(handler, page, f"{page}/contact", {"reason": "  "}, follow_redirects=True)
    assert messages(refused) == ["Say why you need the contact number; it is recorded."]
    assert number not in refused.get_data(as_text=True)

    shown = form_post(handler, page, f"{page}/contact", {"reason": "Arranging a safe time to call back"})
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    assert texts_of_class(shown.get_data(as_text=True), "contact-number") == [number]

    assert number not in handler.get(page).get_data(as_text=True)  # not kept anywhere for the next page
    with console.db.session() as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == AuditAction.CONTACT_REVEALED)).all()
        reason_item = session.get(SealedItem, json.loads(entry.detail)["reason_item"])
        reason_case = reason_item.case.reference
        sessions_data = " ".join(row.data for row in session.scalars(select(ConsoleSession)))
    assert (entry.actor_id, entry.case_reference) == (handler.user_id, reference)
    assert reason_item.kind == "reveal-reason" and reason_case == reference
    assert number not in entry.detail and number not in sessions_data
    assert number.encode() not in every_stored_value(console)
    assert b"safe time to call" not in every_stored_value(console)


def test_an_anonymous_case_has_no_contact_to_reveal(handler, cases, console):
    reference = cases.case(anonymous=True)
    response = form_post(handler, f"/cases/{reference}", f"/cases/{reference}/contact", {"reason": "need it"},
                         follow_redirects=True)
    assert messages(response) == ["This caller chose to stay anonymous: there is no contact number."]
    with console.db.session() as session:
        assert session.scalars(select(AuditEntry).where(AuditEntry.action == AuditAction.CONTACT_REVEALED)).all() == []
        assert session.scalars(select(SealedItem).where(SealedItem.kind == "reveal-reason")).all() == []


def test_a_named_case_without_a_number_says_so(handler, cases):
    reference = cases.case(anonymous=False)
    response = form_post(handler, f"/cases/{reference}", f"/cases/{reference}/contact", {"reason": "need it"},
                         follow_redirects=True)
    assert messages(response) == ["This caller left no contact number."]
