"""Sealed items as stored: bound to their case and kind, refused if touched."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from console.keys import open_item
from storage.cases import open_case
from storage.crypto import SealError
from storage.models import BlobRow, SealedItem


@pytest.fixture
def session(hotline):
    with hotline.db.session() as session:
        yield session


def test_a_stored_item_opens_with_the_private_key(session, hotline, private_key):
    case = open_case(session, anonymous=False)
    item = hotline.sealer.seal_item(session, case, "contact", b'{"phone_number": "+447700900111"}')
    session.commit()
    assert open_item(session, private_key, hotline.blobs, item, periods=hotline.periods) == b'{"phone_number": "+447700900111"}'
    stored = session.scalar(select(BlobRow.data).where(BlobRow.key == item.blob_key))
    assert b"7700900111" not in stored


def test_a_tampered_blob_in_the_database_is_refused(session, hotline, private_key):
    case = open_case(session, anonymous=True)
    item = hotline.sealer.seal_item(session, case, "recording", b"RIFF....WAVE" + bytes(200))
    session.commit()
    data = bytearray(session.scalar(select(BlobRow.data).where(BlobRow.key == item.blob_key)))
    data[-1] ^= 0x80
    session.execute(update(BlobRow).where(BlobRow.key == item.blob_key).values(data=bytes(data)))
    session.commit()
    with pytest.raises(SealError):
        open_item(session, private_key, hotline.blobs, item, periods=hotline.periods)


def test_an_item_moved_to_another_case_or_relabelled_is_refused(session, hotline, private_key):
    first, second = open_case(session, anonymous=True), open_case(session, anonymous=True)
    item = hotline.sealer.seal_item(session, first, "transcript", b'{"text": "..."}')
    session.commit()
    session.execute(update(SealedItem).where(SealedItem.id == item.id).values(case_id=second.id))
    session.commit()
    session.expire_all()
    with pytest.raises(SealError):
        open_item(session, private_key, hotline.blobs, session.get(SealedItem, item.id), periods=hotline.periods)
    session.execute(update(SealedItem).where(SealedItem.id == item.id).values(case_id=first.id, kind="contact"))
    session.commit()
    session.expire_all()
    with pytest.raises(SealError):
        open_item(session, private_key, hotline.blobs, session.get(SealedItem, item.id), periods=hotline.periods)


def test_the_folder_store_keeps_only_sealed_bytes(hotline, data_dir, private_key, session):
    from storage.blobs import FolderBlobStore
    from storage.cases import Sealer

    folder = FolderBlobStore(data_dir / "blobs")
    sealer = Sealer(hotline.sealer.public_key, folder)
    case = open_case(session, anonymous=True)
    item = sealer.seal_item(session, case, "recording", b"plain audio marker 123")
    session.commit()
    files = list((data_dir / "blobs").rglob("*"))
    assert any(path.is_file() for path in files)
    assert all(b"marker 123" not in path.read_bytes() for path in files if path.is_file())
    assert open_item(session, private_key, folder, item) == b"plain audio marker 123"
    sealer.destroy_item(session, item)
    session.commit()
    assert not any(path.is_file() for path in (data_dir / "blobs").rglob("*"))


def test_the_folder_store_keeps_the_console_s_kinds_too(hotline, data_dir, private_key, session):
    """Kinds such as "transcript-version" and "status-reason" were refused by the folder store's key check."""
    from storage.blobs import FolderBlobStore
    from storage.cases import Sealer

    folder = FolderBlobStore(data_dir / "blobs")
    sealer = Sealer(hotline.sealer.public_key, folder)
    case = open_case(session, anonymous=True)
    for kind in ("transcript-version", "status-reason", "reveal-reason", "note"):
        item = sealer.seal_item(session, case, kind, kind.encode())
        session.commit()
        assert open_item(session, private_key, folder, item) == kind.encode()
