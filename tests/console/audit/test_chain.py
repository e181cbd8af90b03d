"""The audit trail as an insider with database access would attack it: edit an entry, delete one,
reorder two, or cut off the newest and rewrite the head to match. Each is caught by verify_chain and
by `flask --app console audit verify`, which names the entry; the cut-off only against a head taken
from the console's log."""
from __future__ import annotations

import logging
import re
import threading

from sqlalchemy import delete, select, update

from console.audit.services import HeadLogger, current_head, record, verify_chain
from storage.db import Database
from storage.models import AuditAction, AuditEntry, AuditHead

HEAD_LINE = re.compile(r"audit head seq=(\d+) hash=([0-9a-f]{64})")


def write_entries(console, count: int) -> None:
    with console.db.session() as session:
        for number in range(count):
            record(session, AuditAction.CASE_VIEWED, actor_label="someone", case_reference="12345678",
                   detail={"n": number})
        session.commit()


def check(console, expected_head=None):
    with console.db.session() as session:
        return verify_chain(session, expected_head)


def cli_verify(console_app, *args: str):
    return console_app.test_cli_runner().invoke(args=["audit", "verify", *args])


def tamper(console, *statements) -> None:
    with console.db.session() as session:
        for statement in statements:
            session.execute(statement)
        session.commit()


def test_an_untouched_chain_is_intact(console, console_app):
    write_entries(console, 5)
    result = check(console)
    assert (result.ok, result.entries, result.head_seq) == (True, 5, 5)
    assert cli_verify(console_app).exit_code == 0


def test_an_edited_entry_is_caught_and_named(console, console_app):
    write_entries(console, 5)
    tamper(console, update(AuditEntry).where(AuditEntry.id == 3).values(case_reference="87654321"))
    result = check(console)
    assert not result.ok and result.first_broken == 3
    outcome = cli_verify(console_app)
    assert outcome.exit_code != 0 and "broken at entry 3" in outcome.output and "changed" in outcome.output


def test_an_edit_that_recomputes_the_entrys_own_hash_still_breaks_the_next_link(console, console_app):
    from console.audit.services import entry_hash

    write_entries(console, 5)
    with console.db.session() as session:
        entry = session.get(AuditEntry, 2)
        entry.detail = '{"n":99}'
        entry.hash = entry_hash(entry.id, entry.created_at, entry.actor_id, entry.actor, entry.action.value,
                                entry.case_reference, entry.target_user_id, entry.detail, entry.prev_hash)
        session.commit()
    assert check(console).first_broken == 3
    assert "broken at entry 3" in cli_verify(console_app).output


def test_a_deleted_entry_is_caught_and_named(console, console_app):
    write_entries(console, 5)
    tamper(console, delete(AuditEntry).where(AuditEntry.id == 2))
    result = check(console)
    assert not result.ok and result.first_broken == 2 and "missing" in result.problem
    outcome = cli_verify(console_app)
    assert outcome.exit_code != 0 and "broken at entry 2" in outcome.output


def test_reordered_entries_are_caught(console, console_app):
    write_entries(console, 5)
    # Swap entries 2 and 4 (their sequence numbers), as an insider reordering the trail would.
    tamper(console,
           update(AuditEntry).where(AuditEntry.id == 2).values(id=-2),
           update(AuditEntry).where(AuditEntry.id == 4).values(id=2),
           update(AuditEntry).where(AuditEntry.id == -2).values(id=4))
    result = check(console)
    assert not result.ok and result.first_broken == 2
    assert "broken at entry 2" in cli_verify(console_app).output


def logged_head(console, caplog) -> str:
    """The head as the running console writes it to its log, read back from that log line."""
    caplog.set_level(logging.INFO, logger="hotline.console.audit")
    HeadLogger(console.db, 300).log_head()
    match = HEAD_LINE.search(caplog.text)
    assert match, caplog.text
    return f"{match.group(1)}:{match.group(2)}"


def test_cutting_off_the_newest_entries_is_caught_against_the_logged_head(console, console_app, caplog):
    write_entries(console, 6)
    head = logged_head(console, caplog)
    assert head.startswith("6:")
    with console.db.session() as session:
        kept = session.get(AuditEntry, 4)
        kept_seq, kept_hash = kept.id, kept.hash
    # The insider removes entries 5 and 6 and rewrites the head to fit, so the chain alone looks whole.
    tamper(console, delete(AuditEntry).where(AuditEntry.id > 4),
           update(AuditHead).where(AuditHead.id == 1).values(seq=kept_seq, hash=kept_hash))
    assert check(console).ok
    assert cli_verify(console_app).exit_code == 0
    outcome = cli_verify(console_app, "--head", head)
    assert outcome.exit_code != 0 and "entry 6" in outcome.output and "no longer in the chain" in outcome.output


def test_a_rewritten_tail_is_caught_against_the_logged_head(console, console_app, caplog):
    write_entries(console, 6)
    head = logged_head(console, caplog)
    with console.db.session() as session:
        kept = session.get(AuditEntry, 4)
        kept_seq, kept_hash = kept.id, kept.hash
    # Cut off 5 and 6, then write two innocent-looking entries in their place: a consistent chain.
    tamper(console, delete(AuditEntry).where(AuditEntry.id > 4),
           update(AuditHead).where(AuditHead.id == 1).values(seq=kept_seq, hash=kept_hash))
    write_entries(console, 2)
    assert check(console).ok
    outcome = cli_verify(console_app, "--head", head)
    assert outcome.exit_code != 0 and "broken at entry 6" in outcome.output and "differs" in outcome.output


def test_the_logged_head_still_verifies_an_honest_chain_that_grew(console, console_app, caplog):
    write_entries(console, 3)
    head = logged_head(console, caplog)
    write_entries(console, 3)
    assert cli_verify(console_app, "--head", head).exit_code == 0


def test_a_malformed_head_is_a_usage_error(console_app):
    outcome = cli_verify(console_app, "--head", "not-a-head")
    assert outcome.exit_code == 2 and "SEQ:HASH" in outcome.output


def test_concurrent_appends_from_two_console_processes_keep_one_chain(console, console_settings):
    # Two Database objects: two connection pools, as two console processes would have.
    processes = [Database(console_settings.database_url) for _ in range(2)]
    errors = []
    start = threading.Barrier(2)

    def append(db: Database, label: str) -> None:
        try:
            start.wait()
            for number in range(25):
                with db.session() as session:
                    record(session, AuditAction.INBOX_VIEWED, actor_label=label, detail={"n": number})
                    session.commit()
        except Exception as error:  # pragma: no cover - reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=append, args=(db, f"process-{i}")) for i, db in enumerate(processes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for db in processes:
        db.dispose()
    assert errors == []
    result = check(console)
    assert result.ok and result.entries == 50
    with console.db.session() as session:
        actors = session.scalars(select(AuditEntry.actor).order_by(AuditEntry.id)).all()
        assert current_head(session)[0] == 50
    assert sorted(set(actors)) == ["process-0", "process-1"]
    assert actors.count("process-0") == actors.count("process-1") == 25


def test_the_chain_verifies_whatever_time_zone_the_database_reports_in(console):
    # PostgreSQL hands timestamps back in the session's TimeZone; a server not set to UTC must not make
    # every entry look tampered with.
    from datetime import timezone
    from zoneinfo import ZoneInfo

    from sqlalchemy import text

    from console.audit.services import entry_hash

    write_entries(console, 3)
    with console.db.session() as session:
        when = session.get(AuditEntry, 1).created_at
    fields = (None, "someone", "case-viewed", "12345678", None, "{}", "0" * 64)
    assert entry_hash(1, when.astimezone(ZoneInfo("Asia/Tokyo")), *fields) == \
        entry_hash(1, when.astimezone(timezone.utc), *fields)
    with console.db.session() as session:
        if console.db.engine.dialect.name == "postgresql":
            session.execute(text("SET TIME ZONE 'Asia/Tokyo'"))
        assert verify_chain(session).ok
