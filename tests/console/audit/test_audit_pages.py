"""Supervisors read the trail in the console: all of it newest first (filtered, a page at a time, with
the chain's state), one case's, or one handler's. Looking is itself audited."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from console.audit.services import record
from storage.models import AuditAction, AuditEntry, User
from tests.console.audit.support import trail
from tests.console.support import skip_until_built

ROW = re.compile(r'<tr data-seq="(\d+)" data-action="([a-z-]+)">')


def rows(response) -> list[tuple[int, str]]:
    return [(int(seq), action) for seq, action in ROW.findall(response.get_data(as_text=True))]


@pytest.fixture
def supervisor(console_app, people):
    skip_until_built(console_app, "auth.second_factor")
    person = people.supervisor()
    person.signs_in()
    return person


@pytest.fixture
def history(console, people):
    """Some of what handlers did on two cases, written as the views write it."""
    alice, bob = people.handler("alice"), people.handler("bob")
    with console.db.session() as session:
        users = {u.username: u for u in session.query(User).filter(User.username.in_(["alice", "bob"]))}
        record(session, AuditAction.CASE_VIEWED, actor=users["alice"], case_reference="11111111")
        record(session, AuditAction.NOTE_ADDED, actor=users["alice"], case_reference="11111111", detail={"item": 7})
        record(session, AuditAction.CASE_VIEWED, actor=users["bob"], case_reference="22222222")
        record(session, AuditAction.ROLE_CHANGED, actor_label="operator", target_user_id=users["alice"].id,
               detail={"from": "handler", "to": "supervisor"})
        session.commit()
    return alice, bob


def test_a_supervisor_sees_the_whole_trail_newest_first_with_the_chain_intact(supervisor, history, console):
    page = supervisor.get("/audit/")
    assert page.status_code == 200
    shown = rows(page)
    assert [seq for seq, _ in shown] == sorted((seq for seq, _ in shown), reverse=True)
    assert {"case-viewed", "note-added", "role-changed"} <= {action for _, action in shown}
    body = page.get_data(as_text=True)
    assert "The chain is intact" in body


def test_the_trail_filters_by_action_case_and_account(supervisor, history):
    alice, bob = history
    assert {a for _, a in rows(supervisor.get("/audit/?action=note-added"))} == {"note-added"}
    by_case = rows(supervisor.get("/audit/?case=22222222"))
    assert [a for _, a in by_case] == ["case-viewed"]
    by_alice = [a for _, a in rows(supervisor.get(f"/audit/?account={alice.user_id}"))]
    assert by_alice == ["role-changed", "note-added", "case-viewed"]  # what she did, and what was done to her
    both = rows(supervisor.get(f"/audit/?account={alice.user_id}&action=case-viewed&case=11111111"))
    assert [a for _, a in both] == ["case-viewed"]


@pytest.mark.parametrize("query, message", [
    ("action=no-such-action", "Choose an action from the list."),
    ("case=12ab", "A case reference is 8 digits."),
    ("account=alice", "Choose an account from the list."),
    ("before=-3", "That page link is not right"),
])
def test_a_filter_that_makes_no_sense_says_so(supervisor, query, message):
    page = supervisor.get(f"/audit/?{query}")
    assert page.status_code == 400 and message in page.get_data(as_text=True)
    assert rows(page) == []


def test_the_trail_is_paged_by_sequence_number(console_app, supervisor, console):
    console_app.config["CONSOLE_SETTINGS"] = console.settings.with_overrides(page_size=3)
    with console.db.session() as session:
        for number in range(7):
            record(session, AuditAction.INBOX_VIEWED, actor_label="someone", detail={"n": number})
        session.commit()
    seqs = [entry.seq for entry in reversed(trail(console, AuditAction.INBOX_VIEWED))]
    first = supervisor.get("/audit/?action=inbox-viewed")
    assert [seq for seq, _ in rows(first)] == seqs[:3]
    older = re.search(r'href="([^"]*before=%d[^"]*)">Older entries' % seqs[2], first.get_data(as_text=True))
    assert older, "no link to older entries"
    second = supervisor.get(older.group(1).replace("&amp;", "&"))
    assert [seq for seq, _ in rows(second)] == seqs[3:6]
    last = supervisor.get(f"/audit/?action=inbox-viewed&before={seqs[5]}")
    assert [seq for seq, _ in rows(last)] == seqs[6:] and "Older entries" not in last.get_data(as_text=True)


def test_a_broken_chain_is_shown_with_its_first_broken_entry(supervisor, history, console):
    with console.db.session() as session:
        session.execute(update(AuditEntry).where(AuditEntry.id == 2).values(detail='{"item":8}'))
        session.commit()
    body = supervisor.get("/audit/").get_data(as_text=True)
    assert "The chain is broken at entry 2" in body and "intact" not in body


def test_a_cases_trail_shows_that_case_only(supervisor, console, hotline, fake_twilio):
    from tests.support.takes import stored_case_with_contact

    reference, _ = stored_case_with_contact(hotline, fake_twilio)
    with console.db.session() as session:
        record(session, AuditAction.CASE_VIEWED, actor_label="someone", case_reference=reference)
        record(session, AuditAction.CASE_VIEWED, actor_label="someone", case_reference="33333333")
        session.commit()
    page = supervisor.get(f"/audit/cases/{reference}")
    assert page.status_code == 200 and [a for _, a in rows(page)] == ["case-viewed"]
    assert f"/audit/cases/{reference}" in page.get_data(as_text=True)


def test_a_handlers_trail_shows_what_they_did_and_what_was_done_to_them(supervisor, history):
    alice, bob = history
    page = supervisor.get(f"/audit/users/{alice.user_id}")
    assert page.status_code == 200
    assert [a for _, a in rows(page)] == ["role-changed", "note-added", "case-viewed"]
    assert "alice" in page.get_data(as_text=True).lower()


def test_an_unknown_case_or_account_is_not_found(supervisor):
    assert supervisor.get("/audit/cases/99999999").status_code == 404
    assert supervisor.get("/audit/cases/not-a-ref").status_code == 404
    assert supervisor.get("/audit/users/987654").status_code == 404


def test_reading_the_trail_is_itself_audited(supervisor, history, console):
    alice, _ = history
    before = len(trail(console, AuditAction.AUDIT_VIEWED))
    supervisor.get(f"/audit/?account={alice.user_id}&action=note-added")
    supervisor.get(f"/audit/users/{alice.user_id}")
    viewed = trail(console, AuditAction.AUDIT_VIEWED)[before:]
    assert [(e.actor_id, e.target_user_id, e.detail["page"]) for e in viewed] == [
        (supervisor.user_id, alice.user_id, "trail"), (supervisor.user_id, alice.user_id, "user")]
    assert viewed[0].detail["action"] == "note-added"


def test_a_handler_cannot_read_the_trail(console_app, people):
    skip_until_built(console_app, "auth.second_factor")
    handler = people.handler()
    handler.signs_in()
    before = len(trail(handler.app.extensions["console"], AuditAction.AUDIT_VIEWED))
    for url in ("/audit/", f"/audit/users/{handler.user_id}"):
        assert handler.get(url).status_code == 403
    assert len(trail(handler.app.extensions["console"], AuditAction.AUDIT_VIEWED)) == before
