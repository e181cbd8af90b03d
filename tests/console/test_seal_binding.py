"""Each sealed item is bound to its own identity, not only to its case and kind (seal v2).

Someone with the database (or the blob store) could otherwise swap two items of one case and kind,
two recordings of one case above all, and each would still open as the other. Two kinds of swap:

- the bytes between blob keys (the sealed_blobs rows, or the folder store's files): each seal binds
  its blob key, so bytes under another key do not open;
- the pointers (Recording.audio_item_id and transcript_item_id, TranscriptVersion.item_id,
  CaseEvent.item_id, or SealedItem.blob_key itself): each seal binds what it belongs to ("recording:17",
  "recording:17/version:2", "case-event:5"), and the console checks that when it opens through a pointer.

Items sealed before (v1) still open, with v1's binding (case and kind).
"""
from __future__ import annotations

import os
import secrets

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select, update

from console.keys import Opener, open_item
from ivr.desk import SqlCallDesk
from ivr.events import RecordingEvent
from jobs.worker import run_until_idle
from storage.cases import take_owner
from storage.crypto import SealError, raw_public_bytes
from storage.models import BlobRow, Case, CaseEvent, Recording, SealedItem, TranscriptVersion, User
from tests.support.audio import phone_wav
from tests.support.transcribers import FakeTranscriber


def two_takes_in_one_case(hotline, fake_twilio, *, transcribed: bool = False) -> list[int]:
    """One call, two takes (the caller recorded, then added more), stored by the real job."""
    call_sid, sids = "CA" + secrets.token_hex(16), []
    with hotline.db.session() as session:
        desk = SqlCallDesk(session, hotline.sealer, hotline.settings.pin_key)
        desk.open_report(call_sid, anonymous=True)
        for seconds in (1.0, 1.5):
            sid, url = fake_twilio.add_recording(phone_wav(seconds), call_sid=call_sid)
            desk.recording_status(call_sid, RecordingEvent(sid, url, 2, "completed"))
            sids.append(sid)
        session.commit()
    if transcribed:
        hotline.workshop.transcriber = FakeTranscriber()
    run_until_idle(hotline.workshop)
    with hotline.db.session() as session:  # in the order they were recorded (ids need not be ordered)
        takes = [session.scalar(select(Recording).where(Recording.recording_sid == sid)) for sid in sids]
        assert len(takes) == 2 and all(take.audio_item_id for take in takes)
        assert not transcribed or all(take.transcript_item_id for take in takes)
        return [take.id for take in takes]


def swap(session, model, column, first_id, second_id) -> None:
    first, second = (session.scalar(select(column).where(model.id == id_)) for id_ in (first_id, second_id))
    session.execute(update(model).where(model.id == first_id).values({column.key: second}))
    session.execute(update(model).where(model.id == second_id).values({column.key: first}))
    session.commit()
    session.expire_all()


@pytest.fixture
def opener(console, private_key) -> Opener:
    return Opener(private_key, console.blobs, console.periods)


def test_the_two_takes_open_as_themselves(console, hotline, fake_twilio, opener):
    takes = two_takes_in_one_case(hotline, fake_twilio)
    with console.db.session() as session:
        audio = [opener.open(session, session.get(Recording, take).audio_item, take_owner(take)) for take in takes]
    assert audio == [phone_wav(1.0), phone_wav(1.5)]


def test_bytes_swapped_between_blob_keys_do_not_open(console, hotline, fake_twilio, opener, private_key):
    takes = two_takes_in_one_case(hotline, fake_twilio)
    with console.db.session() as session:
        keys = [session.get(Recording, take).audio_item.blob_key for take in takes]
        data = [session.scalar(select(BlobRow.data).where(BlobRow.key == key)) for key in keys]
        for key, other in zip(keys, reversed(data)):
            session.execute(update(BlobRow).where(BlobRow.key == key).values(data=other))
        session.commit()
        for take in takes:
            item = session.get(Recording, take).audio_item
            with pytest.raises(SealError):
                opener.open(session, item, take_owner(take))
            with pytest.raises(SealError):  # even opened without asking what it belongs to
                open_item(session, private_key, console.blobs, item)


def test_swapped_audio_pointers_do_not_open(console, hotline, fake_twilio, opener, people):
    first, second = two_takes_in_one_case(hotline, fake_twilio)
    with console.db.session() as session:
        swap(session, Recording, Recording.audio_item_id, first, second)
        for take in (first, second):
            with pytest.raises(SealError):
                opener.open(session, session.get(Recording, take).audio_item, take_owner(take))
    handler = people.handler()
    handler.signs_in()
    for path in (f"/media/takes/{first}/audio", f"/media/takes/{first}/peaks"):
        response = handler.get(path)
        assert 400 <= response.status_code < 500, path
        assert phone_wav(1.5) not in response.get_data()


def test_a_swapped_blob_key_in_the_items_table_does_not_open_through_its_pointer(console, hotline, fake_twilio, opener):
    first, second = two_takes_in_one_case(hotline, fake_twilio)
    with console.db.session() as session:
        items = [session.get(Recording, take).audio_item_id for take in (first, second)]
        # Unique keys: swap by way of a placeholder.
        keys = [session.get(SealedItem, item).blob_key for item in items]
        session.execute(update(SealedItem).where(SealedItem.id == items[0]).values(blob_key="placeholder"))
        session.execute(update(SealedItem).where(SealedItem.id == items[1]).values(blob_key=keys[0]))
        session.execute(update(SealedItem).where(SealedItem.id == items[0]).values(blob_key=keys[1]))
        session.commit()
        session.expire_all()
        with pytest.raises(SealError):
            opener.open(session, session.get(Recording, first).audio_item, take_owner(first))


def test_swapped_transcript_pointers_do_not_open(console, hotline, fake_twilio, opener):
    from console.transcripts import newest_transcript

    first, second = two_takes_in_one_case(hotline, fake_twilio, transcribed=True)
    with console.db.session() as session:
        assert newest_transcript(session, opener, session.get(Recording, first))[1].text == "the officer took the money"
        swap(session, Recording, Recording.transcript_item_id, first, second)
        with pytest.raises(SealError):
            newest_transcript(session, opener, session.get(Recording, first))


def test_swapped_transcript_versions_do_not_open(console, hotline, fake_twilio, opener, people):
    from console.transcripts import correct, open_version, versions

    first, second = two_takes_in_one_case(hotline, fake_twilio, transcribed=True)
    handler = people.handler()
    with console.db.session() as session:
        author = session.get(User, handler.user_id)
        correct(session, opener, console.sealer, author, session.get(Recording, first), 1, 0, 0, "an")
        correct(session, opener, console.sealer, author, session.get(Recording, first), 2, 1, 1, "inspector")
        correct(session, opener, console.sealer, author, session.get(Recording, second), 1, 0, 0, "a")
        session.commit()
        rows = {(row.recording_id, row.version): row.id for row in session.scalars(select(TranscriptVersion))}
        assert [open_version(session, opener, info).text for info in versions(session, session.get(Recording, first))] \
            == ["the officer took the money", "an officer took the money", "an inspector took the money"]
        swap(session, TranscriptVersion, TranscriptVersion.item_id, rows[(first, 2)], rows[(first, 3)])
        for info in versions(session, session.get(Recording, first))[1:]:
            with pytest.raises(SealError):
                open_version(session, opener, info)
        swap(session, TranscriptVersion, TranscriptVersion.item_id, rows[(first, 2)], rows[(first, 3)])  # back
        swap(session, TranscriptVersion, TranscriptVersion.item_id, rows[(first, 2)], rows[(second, 2)])
        with pytest.raises(SealError):
            open_version(session, opener, versions(session, session.get(Recording, second))[1])


def test_swapped_notes_do_not_open_on_the_case_page(console, hotline, fake_twilio, opener, people):
    from console.cases.services import add_note, case_page

    two_takes_in_one_case(hotline, fake_twilio)
    handler = people.handler()
    with console.db.session() as session:
        case, author = session.scalar(select(Case)), session.get(User, handler.user_id)
        events = [add_note(session, console.sealer, case, author, text).id for text in ("first note", "second note")]
        session.commit()
        assert [entry.text for entry in case_page(session, opener, case).timeline if entry.text] == ["first note", "second note"]
        swap(session, CaseEvent, CaseEvent.item_id, *events)
        notes = [entry for entry in case_page(session, opener, session.scalar(select(Case))).timeline
                 if entry.kind.value == "note"]
        assert [(entry.text, entry.unreadable) for entry in notes] == [(None, True), (None, True)]


# --- items sealed before v2 still open ------------------------------------------------------------

def seal_v1(public_key, plaintext: bytes, reference: str, kind: str) -> bytes:
    """A seal exactly as the first version wrote it (written out here, not taken from the code)."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = raw_public_bytes(ephemeral.public_key())
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + raw_public_bytes(public_key),
               info=b"hotline seal v1").derive(ephemeral.exchange(public_key))
    nonce = os.urandom(12)
    associated = f"hotline/v1|case={reference}|kind={kind}".encode()
    return b"\x01" + ephemeral_public + nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def test_an_item_sealed_in_v1_still_opens(console, hotline, fake_twilio, opener):
    from console.transcripts import newest_transcript

    first, _ = two_takes_in_one_case(hotline, fake_twilio, transcribed=True)
    with console.db.session() as session:
        recording = session.get(Recording, first)
        for item, plaintext in ((recording.audio_item, b"RIFF old audio"),
                                (recording.transcript_item, recording.transcript_item and
                                 b'{"text": "an old transcript", "words": [], "model_name": "m", "model_version": "1",'
                                 b' "seconds_taken": 0, "audio_seconds": 0}')):
            old = seal_v1(console.sealer.public_key, plaintext, recording.case.reference, item.kind)
            session.execute(update(BlobRow).where(BlobRow.key == item.blob_key).values(data=old))
        session.commit()
        session.expire_all()
        recording = session.get(Recording, first)
        assert opener.open(session, recording.audio_item, take_owner(first)) == b"RIFF old audio"
        assert newest_transcript(session, opener, recording)[1].text == "an old transcript"
        v1 = bytearray(session.scalar(select(BlobRow.data).where(BlobRow.key == recording.audio_item.blob_key)))
        v1[0] = 2  # passed off as v2: refused
        session.execute(update(BlobRow).where(BlobRow.key == recording.audio_item.blob_key).values(data=bytes(v1)))
        session.commit()
        with pytest.raises(SealError):
            opener.open(session, session.get(Recording, first).audio_item, take_owner(first))
