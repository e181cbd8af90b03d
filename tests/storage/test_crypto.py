from __future__ import annotations

import pytest

from console.keys import load_private_key, unseal, unwrap_private_key
from storage.crypto import (
    KeyFileError,
    SealContext,
    SealError,
    generate_private_key,
    load_public_key,
    seal,
    wrap_private_key,
    write_key_pair,
)

BLOB_KEY = "recording/" + "0" * 32
CONTEXT = SealContext("12345674", "recording", BLOB_KEY, "recording:1")


def test_sealed_audio_opens_only_with_the_private_key_and_its_own_context():
    key = generate_private_key()
    sealed = seal(key.public_key(), b"RIFF the recording", CONTEXT)
    assert b"the recording" not in sealed
    assert unseal(key, sealed, CONTEXT) == b"RIFF the recording"
    with pytest.raises(SealError):
        unseal(generate_private_key(), sealed, CONTEXT)
    with pytest.raises(SealError):
        unseal(key, sealed, SealContext("12345674", "transcript", BLOB_KEY, "recording:1"))
    with pytest.raises(SealError):
        unseal(key, sealed, SealContext("99999990", "recording", BLOB_KEY, "recording:1"))
    with pytest.raises(SealError):  # bytes stored under another blob key
        unseal(key, sealed, SealContext("12345674", "recording", "recording/" + "1" * 32, "recording:1"))
    with pytest.raises(SealError):  # reached through another take's pointer
        unseal(key, sealed, SealContext("12345674", "recording", BLOB_KEY, "recording:2"))
    assert unseal(key, sealed, SealContext("12345674", "recording", BLOB_KEY)) == b"RIFF the recording"


def test_a_seal_names_what_it_belongs_to_and_nothing_that_would_blur_its_binding():
    from console.keys import unseal_with_owner

    key = generate_private_key()
    sealed = seal(key.public_key(), b"a note", SealContext("12345674", "note", "note/" + "2" * 32, "case-event:5"))
    assert unseal_with_owner(key, sealed, SealContext("12345674", "note", "note/" + "2" * 32)) == (b"a note", "case-event:5")
    for bad in ("", "case|kind=x", "recording:1=2", "x" * 300, "récording:1"):
        with pytest.raises(ValueError):
            seal(key.public_key(), b"x", SealContext("12345674", "note", "note/" + "2" * 32, bad))
    with pytest.raises(ValueError):
        seal(key.public_key(), b"x", SealContext("12345674", "note"))  # no blob key, no owner


@pytest.mark.parametrize("position", [0, 1, 40, 50, -1])
def test_a_tampered_byte_anywhere_is_refused(position):
    key = generate_private_key()
    sealed = bytearray(seal(key.public_key(), b"x" * 100, CONTEXT))
    sealed[position] ^= 0x01
    with pytest.raises(SealError):
        unseal(key, bytes(sealed), CONTEXT)


def test_each_item_gets_a_fresh_key():
    key = generate_private_key()
    first, second = (seal(key.public_key(), b"same", CONTEXT) for _ in range(2))
    assert first[1:33] != second[1:33] and first != second


def test_truncated_or_foreign_data_is_refused():
    key = generate_private_key()
    with pytest.raises(SealError):
        unseal(key, b"\x01short", CONTEXT)
    with pytest.raises(SealError):
        unseal(key, b"RIFF" + bytes(100), CONTEXT)


def test_private_key_is_wrapped_with_the_passphrase():
    key = generate_private_key()
    wrapped = wrap_private_key(key, "correct horse battery")
    assert unwrap_private_key(wrapped, "correct horse battery").public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        unwrap_private_key(wrapped, "wrong horse battery")
    with pytest.raises(KeyFileError, match="at least 12"):
        wrap_private_key(key, "short")


def test_key_pair_files_are_written_once_and_private_key_is_owner_only(tmp_path):
    public_path, private_path = write_key_pair(tmp_path, "a long enough passphrase")
    assert private_path.stat().st_mode & 0o077 == 0
    assert "PRIVATE" not in private_path.read_text()
    sealed = seal(load_public_key(public_path), b"hello", CONTEXT)
    assert unseal(load_private_key(private_path, "a long enough passphrase"), sealed, CONTEXT) == b"hello"
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        write_key_pair(tmp_path, "a long enough passphrase")


def test_missing_or_wrong_public_key_file_is_a_clear_error(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        load_public_key(tmp_path / "nope.pub")
    (tmp_path / "bad.pub").write_text("not a key")
    with pytest.raises(KeyFileError, match="not a PEM"):
        load_public_key(tmp_path / "bad.pub")
