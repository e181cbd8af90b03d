"""Sealing: the seal format and everything the internet-facing side may do with keys.

Everything the hotline keeps about a case (recordings, transcripts, contact details, notes) is sealed to
the hotline's X25519 public key: a fresh ephemeral key per item, HKDF-SHA256 to an AES-256-GCM key, and
associated data binding the item to its identity, so sealed bytes moved anywhere else fail to open.
The internet-facing side only ever holds the public key.

What the associated data binds (seal version 2, written since issue 8):
- the case's reference and the item's kind: moved to another case, or passed off as another kind;
- the item's blob key: bytes swapped between two blobs (sealed_blobs rows, or the folder store's files);
- the item's owner, what points at it ("recording:17" for a take's audio and machine transcript,
  "recording:17/version:2" for a correction, "case-event:5" for a note or a status reason, "case" for
  what belongs to the case as a whole: contact numbers, reveal reasons). The owner is written in the
  clear in the seal's header (it names only rows the database names anyway) and authenticated with the
  rest; the console checks it against the pointer it opened the item through, so pointers swapped in
  the database (Recording.audio_item_id and transcript_item_id, TranscriptVersion.item_id,
  CaseEvent.item_id, SealedItem.blob_key) fail to open.

Seal version 3 (since migration 0008) is v2 sealed to a *period key* instead of the hotline key: each
calendar month of case creation has its own X25519 key pair, whose private part is itself sealed to the
hotline key and kept in the key store (storage/keystore.py), which ordinary database backups do not
carry. Destroying a period's key once its cases are purged makes their sealed bytes in every old backup
unreadable, even to the hotline key. The period is named in the clear in the header and bound in the
associated data, so an item cannot be passed off as another period's.

Version 1 seals (case and kind only) still open: their bytes are unchanged, and the console accepts
them with the binding they have. Layouts:
  v1: 0x01 | ephemeral public key (32) | nonce (12) | ciphertext and tag
  v2: 0x02 | ephemeral public key (32) | nonce (12) | owner length (1) | owner (ASCII) | ciphertext and tag
  v3: 0x03 | period (7, "YYYY-MM") | ephemeral public key (32) | nonce (12) | owner length (1) | owner | ciphertext and tag

Opening is a code boundary, not only a key boundary: `unseal` and unwrapping the private key live in
`console/keys.py`, which the line and the workers never import (a test walks their imports). This module
defines the format both sides share; the private key is written here (wrapped with a passphrase, scrypt
then AES-256-GCM) but never read back.
"""
from __future__ import annotations

import hmac
import json
import os
import re
import secrets
from base64 import b64encode
from dataclasses import dataclass
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from storage.files import private_directory

SEAL_V1, SEAL_V2, SEAL_V3 = b"\x01", b"\x02", b"\x03"
SEAL_VERSION = SEAL_V2  # what seal() writes; seal_to_period() writes v3
SEAL_INFO = {SEAL_V1: b"hotline seal v1", SEAL_V2: b"hotline seal v2", SEAL_V3: b"hotline seal v3"}
PERIOD_LENGTH = 7  # "YYYY-MM"
_PERIOD = re.compile(r"[0-9]{4}-(?:0[1-9]|1[0-2])")
PERIOD_KEY_INFO = b"hotline period key v1"
SEAL_HEADER = 1 + 32 + 12  # version, ephemeral public key, nonce (v2 then adds the owner)
CASE_OWNER = "case"  # an item that belongs to its case as a whole, not to a take or an event
_OWNER = re.compile(r"[a-z]+(?:-[a-z]+)*(?::[0-9A-Za-z_-]+)?(?:/[a-z]+:[0-9A-Za-z_-]+)*")
WRAP_FORMAT = "hotline-private-key-v1"
# scrypt cost: about 0.1 s and 32 MiB on a laptop; an operator types the passphrase rarely.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1


class SealError(Exception):
    """A sealed item could not be opened: wrong key, tampered, or not bound to this case and kind."""


class KeyFileError(Exception):
    """A key file is missing, malformed, or the passphrase is wrong."""


@dataclass(frozen=True)
class SealContext:
    """What a sealed item is bound to. Sealing: all four (owner: what the item belongs to). Opening: the
    case, kind and blob key as the database has them, and owner as the pointer the item was reached
    through, or None to accept whatever owner the seal names (an export of every item of a case)."""

    case_reference: str
    kind: str
    blob_key: str | None = None
    owner: str | None = None

    def v1_associated_data(self) -> bytes:
        return f"hotline/v1|case={self.case_reference}|kind={self.kind}".encode()

    def v2_associated_data(self, owner: str) -> bytes:
        if self.blob_key is None:
            raise ValueError("a v2 seal binds its blob key")
        fields = (self.case_reference, self.kind, self.blob_key, owner)
        if any("|" in field or "=" in field for field in fields):  # each field must end where it seems to
            raise ValueError("a sealed item's case, kind, blob key and owner hold no '|' or '='")
        return f"hotline/v2|case={self.case_reference}|kind={self.kind}|blob={self.blob_key}|owner={owner}".encode()


def check_owner(owner: str) -> bytes:
    encoded = owner.encode("ascii") if owner.isascii() else b""
    if not _OWNER.fullmatch(owner) or not 0 < len(encoded) < 256:
        raise ValueError(f"not an owner a seal can name: {owner!r}")
    return encoded


def derive_item_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes, version: bytes = SEAL_V2) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient_public, info=SEAL_INFO[version]
    ).derive(shared)


def raw_public_bytes(public_key: X25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def seal(public_key: X25519PublicKey, plaintext: bytes, context: SealContext) -> bytes:
    """A v2 seal: context must name the blob key the bytes will be stored under, and the owner."""
    if context.owner is None:
        raise ValueError("a v2 seal binds its owner")
    owner = check_owner(context.owner)
    associated_data = context.v2_associated_data(context.owner)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = raw_public_bytes(ephemeral.public_key())
    key = derive_item_key(ephemeral.exchange(public_key), ephemeral_public, raw_public_bytes(public_key), SEAL_V2)
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, associated_data)
    return SEAL_V2 + ephemeral_public + nonce + bytes([len(owner)]) + owner + ciphertext


def period_of(at: datetime) -> str:
    """The period a case's items are sealed under: the calendar month (UTC) the case was opened in."""
    return at.astimezone(timezone.utc).strftime("%Y-%m")


def check_period(period: str) -> bytes:
    if not isinstance(period, str) or not _PERIOD.fullmatch(period):
        raise ValueError(f"not a period: {period!r}")
    return period.encode("ascii")


def v3_associated_data(context: SealContext, owner: str, period: str) -> bytes:
    return context.v2_associated_data(owner).replace(b"hotline/v2|", b"hotline/v3|", 1) + f"|period={period}".encode()


def seal_to_period(period_public: X25519PublicKey, period: str, plaintext: bytes, context: SealContext) -> bytes:
    """A v3 seal: as v2, but to the period's public key, naming and binding the period."""
    if context.owner is None:
        raise ValueError("a v3 seal binds its owner")
    owner, period_bytes = check_owner(context.owner), check_period(period)
    associated_data = v3_associated_data(context, context.owner, period)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = raw_public_bytes(ephemeral.public_key())
    key = derive_item_key(ephemeral.exchange(period_public), ephemeral_public, raw_public_bytes(period_public), SEAL_V3)
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, associated_data)
    return SEAL_V3 + period_bytes + ephemeral_public + nonce + bytes([len(owner)]) + owner + ciphertext


def period_key_associated_data(period: str, period_public: bytes, hotline_public: bytes) -> bytes:
    return b"hotline/period-key|period=" + check_period(period) + b"|public=" + period_public + b"|to=" + hotline_public


def wrap_period_private(hotline_public: X25519PublicKey, period: str, private_key: X25519PrivateKey) -> bytes:
    """A period's private key sealed to the hotline key (ephemeral X25519, HKDF, AES-256-GCM), bound to
    the period, its public key and the hotline key it is sealed to. Layout: ephemeral public (32) | nonce
    (12) | ciphertext and tag. Only the console opens it (console/keys.py)."""
    period_public = raw_public_bytes(private_key.public_key())
    recipient = raw_public_bytes(hotline_public)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = raw_public_bytes(ephemeral.public_key())
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient,
               info=PERIOD_KEY_INFO).derive(ephemeral.exchange(hotline_public))
    nonce = os.urandom(12)
    raw = private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
    return ephemeral_public + nonce + AESGCM(key).encrypt(
        nonce, raw, period_key_associated_data(period, period_public, recipient))


# --- keys -------------------------------------------------------------------------------------------

def generate_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_key_text(public_key: X25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_key_fingerprint(public_key: X25519PublicKey) -> str:
    return sha256(raw_public_bytes(public_key)).hexdigest()[:16]


def public_key_from_raw(raw: bytes) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(raw)


def load_public_key(path: Path) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except FileNotFoundError as error:
        raise KeyFileError(f"public key file {path} does not exist") from error
    except ValueError as error:
        raise KeyFileError(f"public key file {path} is not a PEM public key") from error
    if not isinstance(key, X25519PublicKey):
        raise KeyFileError(f"public key file {path} is not an X25519 key")
    return key


def scrypt_key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def wrap_private_key(private_key: X25519PrivateKey, passphrase: str) -> str:
    if len(passphrase) < 12:
        raise KeyFileError("the passphrase must be at least 12 characters")
    salt, nonce = os.urandom(16), os.urandom(12)
    raw = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = raw_public_bytes(private_key.public_key())
    wrapped = AESGCM(scrypt_key(passphrase, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)).encrypt(
        nonce, raw, WRAP_FORMAT.encode() + public
    )
    document = {
        "format": WRAP_FORMAT,
        "kdf": {"name": "scrypt", "n": _SCRYPT_N, "r": _SCRYPT_R, "p": _SCRYPT_P, "salt": b64encode(salt).decode()},
        "public_key": b64encode(public).decode(),
        "nonce": b64encode(nonce).decode(),
        "wrapped_key": b64encode(wrapped).decode(),
    }
    return json.dumps(document, indent=2) + "\n"


def write_key_pair(directory: Path, passphrase: str) -> tuple[Path, Path]:
    """Create hotline.pub and hotline.key (wrapped) in directory (0700); never overwrites a key."""
    private_directory(directory)
    public_path, private_path = directory / "hotline.pub", directory / "hotline.key"
    for path in (public_path, private_path):
        if path.exists():
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key")
    private_key = generate_private_key()
    wrapped = wrap_private_key(private_key, passphrase)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(wrapped)
    public_path.write_text(public_key_text(private_key.public_key()))
    return public_path, private_path


# --- secrets derived from the server key ------------------------------------------------------------

def keyed_digest(secret_key: str, purpose: str, value: str) -> bytes:
    return hmac.new(secret_key.encode(), f"{purpose}|{value}".encode(), sha256).digest()


def random_digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))
