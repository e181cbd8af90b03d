"""The audit trail records that a handler read, searched, noted, corrected and revealed, and never what:
distinctive words spoken in a take, typed in a note, a correction, a search, a closing reason or a reveal
reason, and the caller's number, appear in no column of any audit entry (nor in the console's log)."""
from __future__ import annotations

import logging

from sqlalchemy import MetaData, select

from storage.models import AuditAction
from tests.console.audit.support import named_case_saying, trail
from tests.console.support import skip_until_built

SPOKEN = "marmalade"  # in the caller's words (the machine transcript)
NOTE = "quokka"
CORRECTION = "tangerine"
CLOSING_REASON = "wombat"
REVEAL_REASON = "pelican"
NUMBER = "+447700900987"


def audit_table_text(console) -> str:
    tables = MetaData()
    tables.reflect(console.db.engine, only=["audit_log", "audit_head"])
    with console.db.engine.connect() as connection:
        return "\n".join(repr(tuple(row)) for table in tables.sorted_tables
                         for row in connection.execute(select(table)))


def test_no_audit_entry_holds_a_word_of_the_report(console_app, console, people, hotline, fake_twilio, caplog):
    skip_until_built(console_app, "auth.second_factor", "cases.case_page", "media.correct")
    caplog.set_level(logging.DEBUG)
    case = named_case_saying(hotline, fake_twilio, console, f"the officer took the {SPOKEN} jar", NUMBER)
    handler = people.handler()
    handler.signs_in()
    triage = lambda path, form: handler.post_form(case.url, form, action=f"{case.url}/{path}")

    search = handler.post_form("/search", {"q": SPOKEN})
    assert case.reference in search.get_data(as_text=True), "the search should find the spoken word"
    assert handler.get(case.url).status_code == 200
    assert handler.get(case.media("transcript")).status_code == 200
    assert handler.get(case.media("audio")).status_code == 200
    csrf = handler.csrf(case.media("history"))
    corrected = handler.client.post(case.media("corrections"), headers={"X-CSRFToken": csrf},
                                    json={"base_version": 1, "start": 4, "end": 4, "text": CORRECTION})
    assert corrected.status_code == 200
    assert triage("notes", {"text": f"caller mentioned a {NOTE}"}).status_code == 302
    revealed = triage("contact", {"reason": f"the {REVEAL_REASON} question"})
    assert NUMBER in revealed.get_data(as_text=True)
    for status, current, reason in (("in-review", "new", ""), ("no-further-action", "in-review", ""),
                                    ("closed", "no-further-action", f"closed over the {CLOSING_REASON}")):
        assert triage("status", {"status": status, "current": current, "reason": reason}).status_code == 302
    assert handler.post_form("/search", {"q": CORRECTION}).status_code == 200

    done = {entry.action for entry in trail(console)}
    assert {AuditAction.SEARCHED, AuditAction.CASE_VIEWED, AuditAction.TRANSCRIPT_VIEWED, AuditAction.AUDIO_PLAYED,
            AuditAction.TRANSCRIPT_CORRECTED, AuditAction.NOTE_ADDED, AuditAction.CONTACT_REVEALED,
            AuditAction.STATUS_CHANGED} <= done
    words = (SPOKEN, NOTE, CORRECTION, CLOSING_REASON, REVEAL_REASON, NUMBER, NUMBER.lstrip("+"), "officer took")
    stored = audit_table_text(console).lower()
    assert [word for word in words if word.lower() in stored] == []
    assert [word for word in words if word.lower() in caplog.text.lower()] == []
