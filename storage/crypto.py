"""Sealing: the seal format and everything the internet-facing side may do with keys.

Everything the hotline keeps about a case (recordings, transcripts, contact details, notes) is sealed to
the hotline's X25519 public key: a fresh ephemeral key per item, HKDF-SHA256 to an AES-256-GCM key, and
associated data naming the case and the kind of item, so a sealed blob moved to another case or passed
off as another kind fails to open. The internet-facing side only ever holds the public key.

Opening is a code boundary, not only a key boundary: `unseal` and unwrapping the private key live in
`console/keys.py`, which the line and the workers never import (a test walks their imports). This module
defines the format both sides share; the private key is written here (wrapped with a passphrase, scrypt
then AES-256-GCM) but never read back.
"""
from __future__ import annotations

import hmac
import json
import os
import secrets
from base64 import b64encode
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

SEAL_VERSION = b"\x01"
SEAL_INFO = b"hotline seal v1"
SEAL_HEADER = len(SEAL_VERSION) + 32 + 12
WRAP_FORMAT = "hotline-private-key-v1"
# scrypt cost: about 0.1 s and 32 MiB on a laptop; an operator types the passphrase rarely.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1


class SealError(Exception):
    """A sealed item could not be opened: wrong key, tampered, or not bound to this case and kind."""


class KeyFileError(Exception):
    """A key file is missing, malformed, or the passphrase is wrong."""


@dataclass(frozen=True)
class SealContext:
    """What a sealed item is bound to; both must match to open it."""

    case_reference: str
    kind: str

    def associated_data(self) -> bytes:
        return f"hotline/v1|case={self.case_reference}|kind={self.kind}".encode()


def derive_item_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient_public, info=SEAL_INFO
    ).derive(shared)


def raw_public_bytes(public_key: X25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def seal(public_key: X25519PublicKey, plaintext: bytes, context: SealContext) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = raw_public_bytes(ephemeral.public_key())
    key = derive_item_key(ephemeral.exchange(public_key), ephemeral_public, raw_public_bytes(public_key))
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, context.associated_data())
    return SEAL_VERSION + ephemeral_public + nonce + ciphertext


# --- keys -------------------------------------------------------------------------------------------

def generate_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_key_text(public_key: X25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_key_fingerprint(public_key: X25519PublicKey) -> str:
    return sha256(raw_public_bytes(public_key)).hexdigest()[:16]


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
    """Create hotline.pub and hotline.key (wrapped) in directory; never overwrites a key."""
    directory.mkdir(parents=True, exist_ok=True)
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
