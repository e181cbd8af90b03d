"""An operator backs the line up while it runs, and restores the backup onto a new machine: the case's
sealed items open as before, and a restore never overwrites a database that holds data unless told to."""
from __future__ import annotations

import io
import json
import stat
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import select

from console.keys import open_item_with_owner
from storage.backup import BLOBS_FILE, MANIFEST, _sha256
from storage.cases import open_case, seal_contact_number, take_owner
from storage.models import Case, Recording, SealedItem

NUMBER = "+447700900456"
WORDS = b'{"text": "he took the cash in the van"}'
AUDIO = b"RIFF" + bytes(4) + b"WAVEfmt " + bytes(64) + b"a take's audio"


@pytest.fixture
def line(settings):
    """The line with its blobs kept on disk, so both the database and the folder store are backed up."""
    from app import create_app

    app = create_app(settings.with_overrides(blob_store="folder"))
    yield app
    app.extensions["hotline"].db.dispose()


def a_case_with_sealed_items(hotline) -> tuple[str, dict[str, bytes]]:
    """A named caller's case: contact number, a take's audio and its transcript, each sealed."""
    with hotline.db.session() as session:
        case = open_case(session, anonymous=False)
        seal_contact_number(session, hotline.sealer, case, NUMBER, confirmed=True)
        take = Recording(case_id=case.id, position=1)
        session.add(take)
        session.flush()
        take.audio_item_id = hotline.sealer.seal_item(session, case, "recording", AUDIO, owner=take_owner(take.id)).id
        take.transcript_item_id = hotline.sealer.seal_item(session, case, "transcript", WORDS, owner=take_owner(take.id)).id
        session.commit()
        return case.reference, {"contact": b'{"phone_number": "+447700900456"}', "recording": AUDIO, "transcript": WORDS}


def opened_items(hotline, private_key, reference: str) -> dict[str, bytes]:
    with hotline.db.session() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        items = session.scalars(select(SealedItem).where(SealedItem.case_id == case.id)).all()
        return {item.kind: open_item_with_owner(session, private_key, hotline.blobs, item, hotline.periods)[0] for item in items}


def an_empty_target(request, database_url: str, tmp_path: Path) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'new-machine' / 'hotline.db'}"
    return request.getfixturevalue("postgres_server").new_database()


def line_on_new_machine(line, target_url: str, tmp_path: Path):
    from app import create_app

    settings = line.extensions["hotline"].settings
    return create_app(settings.with_overrides(database_url=target_url, data_dir=tmp_path / "new-machine"))


def backed_up(line, tmp_path: Path) -> Path:
    result = line.test_cli_runner().invoke(args=["backup", "--out", str(tmp_path / "backups")])
    assert result.exit_code == 0, result.output
    assert "3 sealed items" in result.output and "3 blobs" in result.output
    (folder,) = (tmp_path / "backups").iterdir()
    return folder


def test_a_backup_restored_on_a_new_machine_opens_the_case_as_before(request, line, database_url, tmp_path, private_key):
    hotline = line.extensions["hotline"]
    reference, plaintexts = a_case_with_sealed_items(hotline)
    folder = backed_up(line, tmp_path)

    # Private: the folder 0700, every file in it 0600; and sealed: the caller's number is nowhere in it.
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(path for path in folder.iterdir())
    assert {path.name for path in files} == {MANIFEST, BLOBS_FILE, "database.sqlite" if "sqlite" in database_url else "database.pgdump"}
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    for path in files:
        assert b"7700900456" not in path.read_bytes() and b"took the cash" not in path.read_bytes()
    with tarfile.open(folder / BLOBS_FILE) as tar:
        assert {member.mtime for member in tar} == {0}  # no time a take was sealed

    new_machine = line_on_new_machine(line, an_empty_target(request, database_url, tmp_path), tmp_path)
    result = new_machine.test_cli_runner().invoke(args=["restore", str(folder)])
    assert result.exit_code == 0, result.output
    assert "1 cases, 3 sealed items" in result.output and "every sealed item's blob is in place" in result.output
    restored = new_machine.extensions["hotline"]
    restored.check_schema()  # the restored database, and the key store beside it, at this code's heads: the line starts
    assert opened_items(restored, private_key, reference) == plaintexts
    blob_files = [path for path in (tmp_path / "new-machine" / "blobs").rglob("*") if path.is_file()]
    assert len(blob_files) == 3 and all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in blob_files)
    restored.db.dispose()


def test_a_restore_over_a_database_with_data_needs_overwrite(line, database_url, tmp_path, private_key):
    hotline = line.extensions["hotline"]
    reference, plaintexts = a_case_with_sealed_items(hotline)
    folder = backed_up(line, tmp_path)
    later, _ = a_case_with_sealed_items(hotline)  # reported after the backup was taken
    runner = line.test_cli_runner()

    refused = runner.invoke(args=["restore", str(folder)])
    assert refused.exit_code != 0 and "the database is not empty" in refused.output and "--overwrite" in refused.output
    assert set(opened_items(hotline, private_key, later)) == {"contact", "recording", "transcript"}  # untouched

    hotline.db.dispose()
    replaced = runner.invoke(args=["restore", str(folder), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    with hotline.db.session() as session:
        assert session.scalars(select(Case.reference)).all() == [reference]
    assert opened_items(hotline, private_key, reference) == plaintexts
    assert len([path for path in hotline.blobs.root.rglob("*") if path.is_file()]) == 3  # the later case's are gone


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_damaged_or_forged_backup_is_refused_before_anything_is_written(request, line, database_url, tmp_path):
    a_case_with_sealed_items(line.extensions["hotline"])
    folder = backed_up(line, tmp_path)
    target = line_on_new_machine(line, an_empty_target(request, database_url, tmp_path), tmp_path)
    runner = target.test_cli_runner()

    original = (folder / BLOBS_FILE).read_bytes()
    (folder / BLOBS_FILE).write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    damaged = runner.invoke(args=["restore", str(folder)])
    assert damaged.exit_code != 0 and "does not match its checksum" in damaged.output

    # A tar that would write outside the blob folder, with a manifest made to match it.
    forged = io.BytesIO()
    with tarfile.open(fileobj=forged, mode="w") as tar:
        info = tarfile.TarInfo("../../outside")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    (folder / BLOBS_FILE).write_bytes(forged.getvalue())
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][BLOBS_FILE]["sha256"] = _sha256(folder / BLOBS_FILE)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    refused = runner.invoke(args=["restore", str(folder)])
    assert refused.exit_code != 0 and "not a blob" in refused.output
    assert not (tmp_path / "outside").exists()
    assert not (tmp_path / "new-machine" / "blobs").exists()
    new_database = tmp_path / "new-machine" / "hotline.db"
    assert not new_database.exists() or new_database.stat().st_size == 0  # nothing restored
    target.extensions["hotline"].db.dispose()
