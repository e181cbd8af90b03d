"""Re-sealing a month's long-lived cases under this month's key, so that the month's key can go before its
last case does: what a supervisor (or the operator) does when one referred case keeps a whole month's
deleted cases readable in old backups for a year.

The story: March has a case settled with no further action, long due, a referral kept for a year and a case
on legal hold. The purge deletes the first, but March's key stays for the other two, so the deleted case
still opens from last night's backup. Re-sealing March moves the two live cases under this month's key and
destroys March's key: the live cases still open, nothing of March's old bytes opens any more, and whatever
is sealed for those cases from then on goes under the new key."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

import console.reseal as reseal_module
from console.cases.services import add_note
from console.keys import PeriodKeys, open_item_with_owner, unseal
from console.reseal import ResealRefused, ResealStopped, reseal_period
from jobs.retention import purge
from storage.cases import seal_contact_number
from storage.crypto import SEAL_V3, SealContext, SealError, generate_private_key, period_of, seal_to_period
from storage.models import AuditAction, BlobRow, Case, CaseStatus, Role, SealedItem, User, utcnow
from storage.retention import period_in_use
from tests.console.support import audit_entries
from tests.support.retention import a_worked_case
from tests.support.tables import table_contents

MARCH = datetime(2026, 3, 10, 14, tzinfo=timezone.utc)
APRIL = datetime(2026, 4, 2, 9, tzinfo=timezone.utc)


# --- the story's helpers ---------------------------------------------------------------------------

def this_month() -> str:
    return period_of(utcnow())


def months(console) -> set[str]:
    """The periods whose keys the key store holds."""
    return {row.period for row in console.periods.periods()}


@dataclass(frozen=True)
class BackedUpItem:
    """One sealed item as a backup of the database taken now holds it: its bytes and what names them."""

    reference: str
    data: bytes
    context: SealContext
    period: str | None


def a_backup_of(console) -> list[BackedUpItem]:
    with console.db.session() as session:
        return [BackedUpItem(item.case.reference, console.blobs.get(session, item.blob_key),
                             SealContext(item.case.reference, item.kind, item.blob_key, None), item.key_period)
                for item in session.scalars(select(SealedItem).order_by(SealedItem.id))]


def opens_from_backup(console, private_key, item: BackedUpItem) -> bool:
    """Whether someone with the hotline key, and the key store as it is now, opens the backed-up bytes."""
    try:
        unseal(private_key, item.data, item.context, PeriodKeys(private_key, console.periods))
        return True
    except SealError:
        return False


def items_of(console, reference: str) -> list[SealedItem]:
    with console.db.session() as session:
        return list(session.scalars(select(SealedItem).join(Case).where(Case.reference == reference)
                                    .order_by(SealedItem.id)))


def period_of_case(console, reference: str) -> str | None:
    with console.db.session() as session:
        return session.scalar(select(Case.key_period).where(Case.reference == reference))


def times_of(console, *references: str) -> dict:
    """Each case's created and updated times, and each of its items' created time."""
    with console.db.session() as session:
        cases = session.scalars(select(Case).where(Case.reference.in_(references))).all()
        return {case.reference: (case.created_at, case.updated_at, sorted(item.created_at for item in case.items))
                for case in cases}


def what_each_item_says(console, private_key, reference: str) -> dict[str, tuple[str, bytes]]:
    """kind -> (the period its bytes are sealed under, what it opens to with the hotline key)."""
    opened = {}
    with console.db.session() as session:
        for item in session.scalars(select(SealedItem).join(Case).where(Case.reference == reference)):
            sealed = console.blobs.get(session, item.blob_key)
            assert sealed[:1] == SEAL_V3
            data, _ = open_item_with_owner(session, private_key, console.blobs, item, console.periods)
            opened[item.kind] = (sealed[1:8].decode(), data)
            assert item.key_period == sealed[1:8].decode()  # the row names the period its bytes are sealed under
    return opened


def march_with_a_deleted_case_a_referral_and_a_hold(hotline) -> tuple[str, str, str]:
    deleted = a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 100)
    referral = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    held = a_worked_case(hotline, MARCH, CaseStatus.NO_FURTHER_ACTION, 200)
    with hotline.db.session() as session:
        session.scalar(select(Case).where(Case.reference == held)).legal_hold_since = utcnow()
        session.commit()
    return deleted, referral, held


def the_purge_runs(hotline, now=None):
    return purge(hotline.db, hotline.blobs, hotline.periods, hotline.settings.retention, now)


def the_operator_reseals(console, private_key, period: str, now=None):
    with console.db.session() as session:
        return reseal_period(session, console.periods, console.sealer, private_key, period, now=now)


# --- re-sealing, and what it reaches -----------------------------------------------------------------

def test_resealing_a_month_lets_its_key_go_so_old_backups_of_its_deleted_and_live_cases_open_no_more(
        console, hotline, private_key):
    deleted, referral, held = march_with_a_deleted_case_a_referral_and_a_hold(hotline)
    april = a_worked_case(hotline, APRIL, CaseStatus.REFERRED, 10)
    backup = a_backup_of(console)  # last night's backup of the database
    assert {item.period for item in backup} == {"2026-03", "2026-04"}

    assert the_purge_runs(hotline)["purged"] == 1
    # The referral and the held case keep March's key, so the deleted case still opens from the backup.
    assert "2026-03" in months(console)
    assert all(opens_from_backup(console, private_key, item) for item in backup if item.reference == deleted)

    times_before = times_of(console, referral, held)
    done = the_operator_reseals(console, private_key, "2026-03")

    assert (done.period, done.target, done.cases, done.items, done.key_destroyed) == \
        ("2026-03", this_month(), 2, 4, True)
    assert times_of(console, referral, held) == times_before  # the cases' own times are not touched
    assert "2026-03" not in months(console) and "2026-04" in months(console)
    # The live cases (the held one too) still open, every item under this month's key, none under March's.
    for reference in (referral, held):
        assert period_of_case(console, reference) == this_month()
        assert what_each_item_says(console, private_key, reference) == {
            "recording": (this_month(), b"the caller's words"), "note": (this_month(), b"a handler's note")}
    with console.db.session() as session:
        assert session.scalar(select(SealedItem.id).where(SealedItem.key_period == "2026-03")) is None
        assert not period_in_use(session, "2026-03")
    # Nothing of March opens from the backup any more: not the deleted case, not the live cases' old bytes.
    assert [opens_from_backup(console, private_key, item) for item in backup if item.period == "2026-03"] == [False] * 6
    # April was not touched.
    assert what_each_item_says(console, private_key, april)["note"] == ("2026-04", b"a handler's note")
    assert all(opens_from_backup(console, private_key, item) for item in backup if item.reference == april)


def test_each_case_moved_and_the_key_destroyed_are_in_the_audit_trail_with_no_content(console, hotline, private_key):
    _, referral, held = march_with_a_deleted_case_a_referral_and_a_hold(hotline)
    the_purge_runs(hotline)
    the_operator_reseals(console, private_key, "2026-03")

    moved = audit_entries(console, AuditAction.PERIOD_RESEALED)
    assert sorted((entry.case_reference, entry.actor, entry.detail) for entry in moved) == sorted(
        (reference, "operator", f'{{"from":"2026-03","items":2,"to":"{this_month()}"}}') for reference in (referral, held))
    (destroyed,) = [entry for entry in audit_entries(console, AuditAction.PERIOD_KEY_DESTROYED)
                    if entry.detail == '{"period":"2026-03"}']
    assert destroyed.actor == "operator" and destroyed.id > max(entry.id for entry in moved)
    from console.audit.services import verify_chain

    with console.db.session() as session:
        assert verify_chain(session).ok


def test_what_is_sealed_for_a_resealed_case_afterwards_goes_under_its_new_period(console, hotline, private_key):
    reference = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    the_operator_reseals(console, private_key, "2026-03")

    # A handler's note, and a contact number the line seals on a call-back.
    with console.db.session() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        author = User(username="hana", display_name="Hana", role=Role.HANDLER)
        session.add(author)
        session.flush()
        add_note(session, console.sealer, case, author, "written after the re-seal")
        session.commit()
    with hotline.db.session() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        case.anonymous = False
        seal_contact_number(session, hotline.sealer, case, "+447700900123", confirmed=True)
        session.commit()

    opened = {kind: found for kind, found in what_each_item_says(console, private_key, reference).items()}
    assert opened["note"][0] == this_month()
    assert opened["contact"] == (this_month(), b'{"phone_number": "+447700900123"}')
    with console.db.session() as session:
        assert not period_in_use(session, "2026-03")
        notes = session.scalars(select(SealedItem).join(Case).where(Case.reference == reference,
                                                                    SealedItem.kind == "note")).all()
        assert sorted(open_item_with_owner(session, private_key, console.blobs, note, console.periods)[0]
                      for note in notes) == [b"a handler's note", b"written after the re-seal"]


def test_a_worker_that_read_the_case_before_the_reseal_still_seals_under_the_new_period(console, hotline, private_key):
    """The line's process still holds March's public key (it sealed March's items), and its session read
    the case before the re-seal: without the check after writing, the take would go under a key that is
    destroyed a moment later, and be lost."""
    reference = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    with hotline.db.session() as session:
        stale = session.scalar(select(Case).where(Case.reference == reference))
        assert stale.key_period is None
        done = the_operator_reseals(console, private_key, "2026-03")
        assert done.key_destroyed and stale.key_period is None  # this session still thinks March

        item = hotline.sealer.seal_item(session, stale, "transcript", b'{"text": "late words"}',
                                        owner="recording:1")
        session.commit()
        assert item.key_period == this_month() and stale.key_period == this_month()
    assert what_each_item_says(console, private_key, reference)["transcript"] == (this_month(), b'{"text": "late words"}')


def test_an_item_being_sealed_while_the_case_is_switched_is_waited_for_and_moved_too(console, hotline, private_key):
    """A job has written a take's transcript under March and not yet committed. The re-seal's lock on the
    case waits for it (the item's row holds the case's: PostgreSQL's KEY SHARE, SQLite's write lock), then
    finds the transcript under March and moves it with the rest, before March's key goes."""
    reference = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    outcome = {}
    with hotline.db.session() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        item = hotline.sealer.seal_item(session, case, "transcript", b'{"text": "words"}', owner="recording:1")
        assert item.key_period == "2026-03"
        resealing = threading.Thread(target=lambda: outcome.update(done=the_operator_reseals(console, private_key,
                                                                                              "2026-03")))
        resealing.start()
        resealing.join(timeout=2)
        assert resealing.is_alive(), "the re-seal did not wait for the transaction sealing under March"
        session.commit()
    resealing.join(timeout=60)
    assert (outcome["done"].items, outcome["done"].key_destroyed) == (3, True)
    assert what_each_item_says(console, private_key, reference)["transcript"] == (this_month(), b'{"text": "words"}')


# --- running it again, and after a crash ------------------------------------------------------------

def test_running_it_again_changes_nothing(console, hotline, private_key):
    a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    the_operator_reseals(console, private_key, "2026-03")
    before = table_contents(console.db)

    with pytest.raises(ResealRefused, match="already destroyed"):
        the_operator_reseals(console, private_key, "2026-03")
    assert table_contents(console.db) == before


def test_a_purge_that_destroys_the_key_first_is_the_one_audit_entry_of_it(console, hotline, private_key, monkeypatch):
    """The workers' purge and a re-seal can reach the spent month at the same moment: the key goes once, the
    re-seal still reports it gone, and only the one that destroyed it audits it."""
    _, referral, _ = march_with_a_deleted_case_a_referral_and_a_hold(hotline)
    the_purge_runs(hotline)
    store_destroy = type(console.periods).destroy

    def a_purge_gets_there_first(store, period):
        monkeypatch.setattr(type(console.periods), "destroy", store_destroy)  # the purge's own is the real one
        assert the_purge_runs(hotline)["period keys destroyed"] == 1  # the re-seal's moves are committed
        return store_destroy(store, period)

    monkeypatch.setattr(type(console.periods), "destroy", a_purge_gets_there_first)
    done = the_operator_reseals(console, private_key, "2026-03")

    assert done.key_destroyed and done.key_kept is None and "2026-03" not in months(console)
    assert [(entry.actor, entry.detail) for entry in audit_entries(console, AuditAction.PERIOD_KEY_DESTROYED)
            if entry.detail == '{"period":"2026-03"}'] == [("system", '{"period":"2026-03"}')]
    assert what_each_item_says(console, private_key, referral)["note"] == (this_month(), b"a handler's note")


def test_within_a_week_of_the_month_s_end_the_key_is_left_to_the_first_purge_after_it(console, hotline, private_key):
    """Re-sealed on 3 April: a case opened in March's last minutes may still be committing, so March's key
    waits for the purge's own grace; running it again meanwhile is a no-op; the purge then destroys it."""
    reference = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    early = datetime(2026, 4, 3, 12, tzinfo=timezone.utc)

    done = the_operator_reseals(console, private_key, "2026-03", now=early)
    assert (done.target, done.cases, done.items, done.key_destroyed) == ("2026-04", 1, 2, False)
    assert "2026-04-08 00:00 UTC" in done.key_kept and "2026-03" in months(console)
    before = table_contents(console.db)
    again = the_operator_reseals(console, private_key, "2026-03", now=early)
    assert (again.cases, again.items, again.key_destroyed) == (0, 0, False)
    assert table_contents(console.db) == before

    assert the_purge_runs(hotline, now=datetime(2026, 4, 8, 1, tzinfo=timezone.utc))["period keys destroyed"] == 1
    assert "2026-03" not in months(console)
    assert what_each_item_says(console, private_key, reference)["note"] == ("2026-04", b"a handler's note")


class Crash(Exception):
    pass


def crashing_after_its_first_commit(session):
    commit = session.commit

    def commit_then_crash():
        commit()
        raise Crash()

    session.commit = commit_then_crash


def test_a_run_that_crashed_after_its_first_commit_leaves_every_item_open_and_the_next_run_finishes(
        console, hotline, private_key, monkeypatch):
    first, second = (a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10) for _ in range(2))
    monkeypatch.setattr(reseal_module, "BATCH_ITEMS", 1)  # one item a transaction: a case can be half moved
    with console.db.session() as session:
        crashing_after_its_first_commit(session)
        with pytest.raises(Crash):
            reseal_period(session, console.periods, console.sealer, private_key, "2026-03")

    # One case is switched with one item moved; everything of both cases opens, under one key or the other.
    periods = {reference: {kind: found[0] for kind, found in what_each_item_says(console, private_key, reference).items()}
               for reference in (first, second)}
    assert sorted(sorted(kinds.values()) for kinds in periods.values()) == [["2026-03", "2026-03"],
                                                                            ["2026-03", this_month()]]
    assert "2026-03" in months(console) and audit_entries(console, AuditAction.PERIOD_RESEALED) == []

    done = the_operator_reseals(console, private_key, "2026-03")
    assert (done.cases, done.items, done.key_destroyed) == (2, 3, True)
    for reference in (first, second):
        assert what_each_item_says(console, private_key, reference) == {
            "recording": (this_month(), b"the caller's words"), "note": (this_month(), b"a handler's note")}
    assert sorted(entry.case_reference for entry in audit_entries(console, AuditAction.PERIOD_RESEALED)) == sorted(
        [first, second])


@pytest.fixture
def folder_blob_store(settings_env):
    settings_env["HOTLINE_BLOB_STORE"] = "folder"


def test_with_a_folder_blob_store_a_run_that_fails_mid_case_deletes_no_bytes_still_in_use(
        folder_blob_store, console, hotline, private_key, monkeypatch):
    """A folder store unlinks at once: the old bytes of an item sealed again may go only once the
    transaction that points the item at its new bytes has committed."""
    reference = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    assert type(console.blobs).__name__ == "FolderBlobStore"
    old_bytes = {item.blob_key for item in items_of(console, reference)}
    moved = []
    move = reseal_module._move

    def move_one_then_fail(*args):
        if moved:
            raise Crash()
        move(*args)
        moved.append(True)

    monkeypatch.setattr(reseal_module, "_move", move_one_then_fail)
    with pytest.raises(Crash):
        the_operator_reseals(console, private_key, "2026-03")
    assert what_each_item_says(console, private_key, reference) == {
        "recording": ("2026-03", b"the caller's words"), "note": ("2026-03", b"a handler's note")}

    monkeypatch.setattr(reseal_module, "_move", move)
    done = the_operator_reseals(console, private_key, "2026-03")
    assert (done.cases, done.items, done.key_destroyed) == (1, 2, True)
    assert what_each_item_says(console, private_key, reference) == {
        "recording": (this_month(), b"the caller's words"), "note": (this_month(), b"a handler's note")}
    on_disk = {path.relative_to(console.blobs.root).as_posix() for path in console.blobs.root.rglob("*") if path.is_file()}
    assert {item.blob_key for item in items_of(console, reference)} <= on_disk
    assert not old_bytes & on_disk  # the old bytes are gone (the failed run's new copy of one item is left, unused)
    assert len(on_disk) == 3


# --- what is refused ---------------------------------------------------------------------------------

@pytest.mark.parametrize("period, why", [
    ("this month", "this month or later"),
    ("next month", "this month or later"),
    ("2026-13", "not a period"),
    ("march", "not a period"),
    ("2025-01", "already destroyed"),  # no such key in the store
])
def test_a_period_that_cannot_be_resealed_is_refused_and_nothing_changes(console, hotline, private_key, period, why):
    a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    following = (utcnow().replace(day=1) + timedelta(days=32)).replace(day=1)
    period = {"this month": this_month(), "next month": period_of(following)}.get(period, period)
    before = table_contents(console.db)
    with pytest.raises(ResealRefused, match=why):
        the_operator_reseals(console, private_key, period)
    assert table_contents(console.db) == before


def test_a_hotline_key_that_does_not_open_the_month_s_key_moves_nothing(console, hotline):
    a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    before = table_contents(console.db)
    with pytest.raises(ResealRefused, match="does not open with this hotline key"):
        the_operator_reseals(console, generate_private_key(), "2026-03")
    assert table_contents(console.db) == before and "2026-03" in months(console)


def test_a_case_counts_for_the_period_it_is_sealed_under_not_the_month_it_was_opened_in(console, hotline, private_key):
    reference = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    with console.db.session() as session:
        assert period_in_use(session, "2026-03") and not period_in_use(session, "2026-04")
        case = session.scalar(select(Case).where(Case.reference == reference))
        case.key_period = "2026-04"  # as if re-sealed in April, its items not yet moved
        session.commit()
        assert period_in_use(session, "2026-03")  # its items still are under March
        assert period_in_use(session, "2026-04")  # and the case itself under April
        for item in case.items:
            item.key_period = "2026-04"
        session.commit()
        assert not period_in_use(session, "2026-03")


def test_an_item_that_does_not_open_stops_the_run_and_the_month_s_key_is_kept(console, hotline, private_key):
    reference = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    (note,) = [item for item in items_of(console, reference) if item.kind == "note"]
    # Its bytes replaced by a seal to some other key (damaged, or forged by someone who wrote the database).
    forged = seal_to_period(generate_private_key().public_key(), "2026-03", b"forged words",
                            SealContext(reference, "note", note.blob_key, "case-event:1"))
    with console.db.session() as session:
        session.execute(update(BlobRow).where(BlobRow.key == note.blob_key).values(data=forged))
        session.commit()

    with pytest.raises(ResealStopped) as stopped:
        the_operator_reseals(console, private_key, "2026-03")
    assert f"Item {note.id} (note) does not open" in str(stopped.value) and "forged" not in str(stopped.value)
    assert "2026-03" in months(console)  # nothing sealed under it is lost
    assert [item.key_period for item in items_of(console, reference) if item.id == note.id] == ["2026-03"]


# --- the supervisors' page -----------------------------------------------------------------------------

HELD_OPEN = re.compile(r'<tr class="period-held-open" data-period="(\d{4}-\d{2})">\s*<td>[^<]*</td>\s*'
                       r'<td>(\d+)</td>\s*<td>([^<]*)</td>')


def held_open(html: str) -> dict[str, tuple[int, str]]:
    return {period: (int(cases), due.strip()) for period, cases, due in HELD_OPEN.findall(html)}


def flashes(html: str) -> list[str]:
    return [re.sub(r"\s+", " ", message) for message in re.findall(r'<p class="flash flash-\w+" role="status">([^<]*)</p>', html)]


def due_label(console, reference: str) -> str:
    from console.cases.services import moment_label
    from storage.retention import schedule

    with console.db.session() as session:
        (row,) = [row for row in schedule(session, console.settings.retention) if row.reference == reference]
    return moment_label(row.due_at)


def test_a_supervisor_sees_the_months_kept_open_and_reseals_one_with_the_button(console_app, console, hotline,
                                                                              people, private_key):
    deleted, referral, held = march_with_a_deleted_case_a_referral_and_a_hold(hotline)
    april = a_worked_case(hotline, APRIL, CaseStatus.REFERRED, 10)
    the_purge_runs(hotline)
    supervisor = people.supervisor()
    supervisor.signs_in()

    page = supervisor.get("/retention").get_data(as_text=True)
    listed = held_open(page)
    assert listed == {"2026-03": (2, "not known yet (1 on legal hold)"), "2026-04": (1, due_label(console, april))}
    assert f"Re-seal under {this_month()}" in page

    response = supervisor.post_form("/retention", {}, action="/retention/periods/2026-03/reseal", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert flashes(html) == [f"Period 2026-03: 2 cases and 4 items sealed again under {this_month()}. Its key is "
                             "destroyed: what was sealed under it opens no more, in any backup of the database."]
    assert "2026-03" not in held_open(html) and "2026-04" in held_open(html)
    assert "2026-03" not in months(console)
    (user,) = [entry.actor for entry in audit_entries(console, AuditAction.PERIOD_KEY_DESTROYED)
               if entry.detail == '{"period":"2026-03"}']
    assert user == supervisor.username
    assert {entry.actor for entry in audit_entries(console, AuditAction.PERIOD_RESEALED)} == {supervisor.username}
    # The referral reads as before, for a handler.
    handler = people.handler()
    handler.signs_in()
    case_page = handler.get(f"/cases/{referral}")
    assert case_page.status_code == 200 and "a handler&#39;s note" in case_page.get_data(as_text=True)
    assert {deleted, held, april}


def test_a_big_month_is_resealed_a_stretch_at_a_time_and_the_button_says_what_is_left(console_app, console, hotline,
                                                                                     people, private_key, monkeypatch):
    """A month with thousands of long-lived cases takes minutes (16 to 30 ms a case with a minute of audio):
    longer than a browser or a front proxy waits. Each press works for a bounded time, and says what is left."""
    import console.retention.views as retention_views

    march_with_a_deleted_case_a_referral_and_a_hold(hotline)
    the_purge_runs(hotline)
    monkeypatch.setattr(retention_views, "RESEAL_SECONDS_A_PRESS", 0.0)  # every press: one case, then stop
    supervisor = people.supervisor()
    supervisor.signs_in()

    def presses() -> list[str]:
        response = supervisor.post_form("/retention", {}, action="/retention/periods/2026-03/reseal",
                                        follow_redirects=True)
        assert response.status_code == 200
        return flashes(response.get_data(as_text=True))

    assert presses() == [f"Period 2026-03: 1 case and 2 items sealed again under {this_month()}. 1 case is still "
                         "to move: press Re-seal again to go on."]
    assert "2026-03" in months(console)
    assert len(audit_entries(console, AuditAction.PERIOD_RESEALED)) == 1
    assert presses() == [f"Period 2026-03: 1 case and 2 items sealed again under {this_month()}. Its key is "
                         "destroyed: what was sealed under it opens no more, in any backup of the database."]
    assert "2026-03" not in months(console)
    assert len(audit_entries(console, AuditAction.PERIOD_RESEALED)) == 2


def test_the_operator_s_run_has_no_time_limit_and_a_limited_run_moves_a_case_at_least(console, hotline, private_key):
    march_with_a_deleted_case_a_referral_and_a_hold(hotline)
    the_purge_runs(hotline)
    with console.db.session() as session:
        first = reseal_period(session, console.periods, console.sealer, private_key, "2026-03", seconds=0.0)
    assert (first.cases, first.cases_left, first.key_destroyed) == (1, 1, False)
    rest = the_operator_reseals(console, private_key, "2026-03")
    assert (rest.cases, rest.cases_left, rest.key_destroyed) == (1, 0, True)


def test_the_button_s_bad_and_stale_posts_get_a_message_not_an_error(console_app, console, hotline, people):
    a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    supervisor = people.supervisor()
    supervisor.signs_in()

    def posts(period: str) -> tuple[int, list[str]]:
        response = supervisor.post_form("/retention", {}, action=f"/retention/periods/{period}/reseal",
                                        follow_redirects=True)
        return response.status_code, flashes(response.get_data(as_text=True))

    assert posts("2026-13") == (200, ["That is not a period (a month, as 2026-03)."])
    status, said = posts(this_month())
    assert status == 200 and "this month or later" in said[0]
    assert posts("2026-03")[0] == 200
    status, said = posts("2026-03")  # pressed twice, or from a page left open
    assert status == 200 and "already destroyed" in said[0]
    assert supervisor.client.post("/retention/periods/2026-03/reseal").status_code == 400  # no CSRF token
    assert len(audit_entries(console, AuditAction.PERIOD_RESEALED)) == 1


def test_a_handler_cannot_reseal(console_app, console, hotline, people):
    a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    handler = people.handler()
    handler.signs_in()
    response = handler.post_form("/inbox", {}, action="/retention/periods/2026-03/reseal")
    assert response.status_code == 403
    assert "2026-03" in months(console) and audit_entries(console, AuditAction.PERIOD_RESEALED) == []


# --- the operator's commands -----------------------------------------------------------------------------

def test_the_operator_reseals_a_month_from_the_command_line_and_keys_status_counts_the_cases(
        console_app, console, hotline, key_passphrase):
    march = a_worked_case(hotline, MARCH, CaseStatus.REFERRED, 10)
    a_worked_case(hotline, APRIL, CaseStatus.REFERRED, 10)
    a_worked_case(hotline, APRIL, CaseStatus.NO_FURTHER_ACTION, 10)
    runner = console_app.test_cli_runner()

    status = runner.invoke(args=["keys", "status"]).output
    assert re.search(r"period 2026-03: sealed to hotline key \w+; cases on it: 1\n", status)
    assert re.search(r"period 2026-04: sealed to hotline key \w+; cases on it: 2\n", status)

    result = runner.invoke(args=["keys", "reseal", "2026-03"], env={"HOTLINE_KEY_PASSPHRASE": key_passphrase})
    assert result.exit_code == 0, result.output
    assert f"period 2026-03: 1 cases and 2 items sealed again under {this_month()}" in result.output
    assert "key of period 2026-03 destroyed" in result.output
    assert period_of_case(console, march) == this_month()

    status = runner.invoke(args=["keys", "status"]).output
    assert "period 2026-03" not in status
    assert re.search(rf"period {this_month()}: sealed to hotline key \w+; cases on it: 1\n", status)

    again = runner.invoke(args=["keys", "reseal", "2026-03"], env={"HOTLINE_KEY_PASSPHRASE": key_passphrase})
    assert again.exit_code != 0 and "already destroyed" in again.output


def test_the_command_refuses_this_month_before_asking_for_the_passphrase(console_app, hotline):
    result = console_app.test_cli_runner().invoke(args=["keys", "reseal", this_month()])  # no passphrase given
    assert result.exit_code != 0 and "this month or later" in result.output
    assert "passphrase" not in result.output
