"""Rotating the hotline key, as the operator and the handlers live it: the operator makes a new key pair;
every period key and every item sealed before period keys moves to it; handlers take the new key up at
their next sign-in and read everything as before; then the old key is retired and opens nothing."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from console.keys import Opener, load_private_key
from console.rotation import _copy_key
from storage.cases import Sealer, event_owner, open_case
from storage.crypto import SealError, public_key_fingerprint
from storage.keystore import KeySuccessor
from storage.models import AuditAction, Case, CaseEvent, CaseEventKind, CaseStatus, SealedItem, User
from tests.console.support import audit_entries
from tests.support.retention import a_worked_case

NEW_PASSPHRASE = "a new passphrase, long enough"
OLD_NOTE = "written before period keys existed"


def a_note_sealed_before_period_keys(hotline) -> str:
    """A case whose note is sealed v2, straight to the hotline key, as every item was before migration 0008."""
    legacy = Sealer(hotline.sealer.public_key, hotline.blobs)  # no key store: v2
    with hotline.db.session() as session:
        case = open_case(session, anonymous=True)
        note = CaseEvent(case_id=case.id, kind=CaseEventKind.NOTE)
        session.add(note)
        session.flush()
        note.item_id = legacy.seal_item(session, case, "note", OLD_NOTE.encode(), owner=event_owner(note.id)).id
        session.commit()
        return case.reference


def rotates(console_app, key_passphrase, new_dir):
    return console_app.test_cli_runner().invoke(
        args=["keys", "rotate", "--new-dir", str(new_dir)], env={"HOTLINE_KEY_PASSPHRASE": key_passphrase},
        input=f"{NEW_PASSPHRASE}\n{NEW_PASSPHRASE}\n")


def test_a_rotation_moves_everything_to_the_new_key_and_handlers_take_it_up_at_sign_in(
        console_app, console, hotline, people, private_key, key_passphrase, tmp_path):
    legacy_case = a_note_sealed_before_period_keys(hotline)
    worked = a_worked_case(hotline, datetime(2026, 3, 10, tzinfo=timezone.utc), CaseStatus.REFERRED, 10)
    handler, away = people.handler(), people.supervisor()
    handler.signs_in()
    assert OLD_NOTE in handler.get(f"/cases/{legacy_case}").get_data(as_text=True)
    old_fp = public_key_fingerprint(private_key.public_key())

    result = rotates(console_app, key_passphrase, tmp_path / "new-keys")
    assert result.exit_code == 0, result.output
    new_private = load_private_key(tmp_path / "new-keys" / "hotline.key", NEW_PASSPHRASE)
    new_fp = public_key_fingerprint(new_private.public_key())
    assert f"hotline key {old_fp} -> {new_fp}" in result.output and "1 items sealed under period keys" in result.output

    # Every period key is sealed to the new key, and no item is sealed straight to a hotline key any more.
    assert {row.hotline_key for row in console.periods.periods()} == {new_fp}
    with console.db.session() as session:
        assert session.scalar(select(SealedItem.id).where(SealedItem.key_period.is_(None))) is None
        items = session.scalars(select(SealedItem)).all()
        new_opener = Opener(new_private, console.blobs, console.periods)
        old_opener = Opener(private_key, console.blobs, console.periods)
        note = session.scalar(select(CaseEvent).join(Case).where(Case.reference == legacy_case))
        assert new_opener.open(session, note.item, event_owner(note.id)) == OLD_NOTE.encode()
        for item in items:
            try:
                old_opener.open(session, item, None)
                raise AssertionError("the old key still opens an item")
            except SealError:
                pass

    # The signed-in handler's session held the old key: it ended. Signing in again takes up the new key.
    assert handler.get("/inbox").status_code == 401
    handler.new_browser()
    handler.signs_in()
    page = handler.get(f"/cases/{legacy_case}").get_data(as_text=True)
    assert OLD_NOTE in page
    assert handler.get(f"/cases/{worked}").status_code == 200
    with console.db.session() as session:
        assert _copy_key(session.get(User, handler.user_id).wrapped_key) == new_fp
        assert _copy_key(session.get(User, away.user_id).wrapped_key) == old_fp  # not signed in since
    (upgraded,) = audit_entries(console, AuditAction.ACCOUNT_KEY_UPGRADED)
    assert upgraded.target_user_id == handler.user_id and upgraded.detail == f'{{"from":"{old_fp}","to":"{new_fp}"}}'

    # The line still has the old hotline.pub: a new month's key goes to the new hotline key all the same.
    with hotline.db.session() as session:
        case = open_case(session, anonymous=True)
        case.created_at = datetime(2027, 1, 5, tzinfo=timezone.utc)
        hotline.sealer.seal_item(session, case, "contact", b"{}")
        session.commit()
    assert console.periods.get("2027-01").hotline_key == new_fp

    # Retiring: the supervisor who never signed in is disabled; the successor copy is erased.
    result = console_app.test_cli_runner().invoke(args=["keys", "retire", old_fp])
    assert result.exit_code == 0, result.output
    assert away.username in result.output
    with console.db.session() as session:
        assert session.get(User, away.user_id).disabled_at is not None
        assert session.get(User, handler.user_id).disabled_at is None
    with console.periods.session() as keys:
        assert keys.get(KeySuccessor, old_fp).sealed_new_private is None
    assert [entry.action for entry in audit_entries(console)][-1] is AuditAction.HOTLINE_KEY_RETIRED
    status = console_app.test_cli_runner().invoke(args=["keys", "status"])
    assert "items sealed straight to a hotline key (v1, v2): 0" in status.output
    assert f"accounts holding hotline key {new_fp}: 1" in status.output


def test_retiring_before_the_rotation_is_refused(console_app, private_key):
    fingerprint = public_key_fingerprint(private_key.public_key())
    result = console_app.test_cli_runner().invoke(args=["keys", "retire", fingerprint])
    assert result.exit_code != 0 and "has not been rotated" in result.output
