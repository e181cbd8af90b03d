"""Opening: the only code that turns sealed bytes back into a report, and where the private key lives.

The line and the workers never import this module (tests/test_import_boundary.py walks their imports).
The hotline's private key reaches a console process in one of three wrappings, each AES-256-GCM with
associated data naming what it is for, so one wrapping can never be passed off as another:

- the operator's `hotline.key`, under a passphrase (scrypt; written by storage.keygen);
- each account's own copy, under a key derived from that person's password (argon2id), as GlobaLeaks
  does: signing in unwraps it, a password change re-wraps it, disabling the account deletes it;
- an invitation's copy, under the random token in the one-time enrolment link (the database holds
  only the token's hash, so a copy of the database cannot enrol anyone or unwrap anything);
- a signed-in session's copy, under a random secret that exists only in that handler's cookie.

Since migration 0008 the hotline key opens items through a period key (seal v3): the period's private key
is in the key store (storage/keystore.py), sealed to the hotline key; once destroyed, nothing opens that
period's items, in the database or in any backup of it. v1 and v2 items open with the hotline key itself.
"""
from __future__ import annotations

import hmac
import json
import os
from base64 import b64decode, b64encode
from dataclasses import dataclass, field
from pathlib import Path

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.orm import Session

from storage.blobs import BlobStore
from storage.crypto import (
    SEAL_HEADER,
    SEAL_V1,
    SEAL_V2,
    SEAL_V3,
    PERIOD_KEY_INFO,
    PERIOD_LENGTH,
    WRAP_FORMAT,
    KeyFileError,
    SealContext,
    SealError,
    derive_item_key,
    period_key_associated_data,
    raw_public_bytes,
    scrypt_key,
    v3_associated_data,
)
from storage.keystore import KeyStore
from storage.models import SealedItem

_ACCOUNT_FORMAT = "hotline-account-key-v1"
_INVITE_FORMAT = "hotline-invite-key-v1"
_SESSION_FORMAT = b"hotline-session-key-v1"


class KeyUnwrapError(Exception):
    """A wrapped copy of the private key did not open: wrong password, token or cookie, or tampered."""


def unwrap_period_private(hotline_private: X25519PrivateKey, period: str, period_public: bytes,
                          sealed_private: bytes) -> X25519PrivateKey:
    """A period's private key, from its copy sealed to the hotline key (storage.crypto.wrap_period_private).
    It must be the private half of the public key the store names: a key the line's side swapped in
    (it can write the store) does not open."""
    recipient = raw_public_bytes(hotline_private.public_key())
    try:
        ephemeral_public, nonce, body = sealed_private[:32], sealed_private[32:44], sealed_private[44:]
        shared = hotline_private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient,
                   info=PERIOD_KEY_INFO).derive(shared)
        raw = AESGCM(key).decrypt(nonce, body, period_key_associated_data(period, period_public, recipient))
    except (InvalidTag, ValueError) as error:
        raise SealError(f"the key of period {period} does not open with this hotline key") from error
    return _checked_private_key(raw, period_public, SealError(f"the key of period {period} is inconsistent"))


@dataclass
class PeriodKeys:
    """Period keys opened with one hotline private key, for one request or one command."""

    hotline_private: X25519PrivateKey
    store: KeyStore | None
    _opened: dict = field(default_factory=dict, repr=False)

    def private_key(self, period: str) -> X25519PrivateKey:
        if period not in self._opened:
            row = self.store.get(period) if self.store is not None else None
            if row is None:
                raise SealError(f"the key of period {period} is destroyed (or not in this key store)")
            self._opened[period] = unwrap_period_private(self.hotline_private, period, row.public_key,
                                                         row.sealed_private)
        return self._opened[period]


def unseal_with_owner(private_key: X25519PrivateKey, sealed: bytes, context: SealContext,
                      periods: PeriodKeys | None = None) -> tuple[bytes, str | None]:
    """The plaintext, and the owner the seal names (None for a v1 seal, which names none).

    v3: as v2, opened with the period's key (from periods, which the hotline key opens).
    v2: the case, kind and blob key must be the ones sealed, and so must context.owner unless it is None.
    v1 (sealed before issue 8): the case and kind must match; it binds nothing more, so it opens
    whatever pointer it was reached through."""
    version = sealed[:1]
    if version == SEAL_V3:
        return _unseal_v3(sealed, context, periods or PeriodKeys(private_key, None))
    if version not in (SEAL_V1, SEAL_V2) or len(sealed) < SEAL_HEADER + 16:
        raise SealError("not a sealed hotline item")
    ephemeral_public, nonce, body = sealed[1:33], sealed[33:SEAL_HEADER], sealed[SEAL_HEADER:]
    owner = None
    try:
        if version == SEAL_V2:
            length = body[0]
            owner, body = body[1:1 + length].decode("ascii"), body[1 + length:]
            if context.owner is not None and owner != context.owner:
                raise SealError("the sealed item belongs to something else than what points at it")
            associated_data = context.v2_associated_data(owner)
        else:
            associated_data = context.v1_associated_data()
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        key = derive_item_key(shared, ephemeral_public, raw_public_bytes(private_key.public_key()), version)
        return AESGCM(key).decrypt(nonce, body, associated_data), owner
    except (InvalidTag, ValueError, IndexError) as error:  # UnicodeDecodeError is a ValueError
        raise SealError("the sealed item is damaged, or belongs to another case, kind, blob or key") from error


def _unseal_v3(sealed: bytes, context: SealContext, periods: PeriodKeys) -> tuple[bytes, str]:
    head = 1 + PERIOD_LENGTH
    if len(sealed) < head + 32 + 12 + 1 + 16:
        raise SealError("not a sealed hotline item")
    try:
        period = sealed[1:head].decode("ascii")
        ephemeral_public, nonce, body = sealed[head:head + 32], sealed[head + 32:head + 44], sealed[head + 44:]
        length = body[0]
        owner, body = body[1:1 + length].decode("ascii"), body[1 + length:]
    except (ValueError, IndexError) as error:
        raise SealError("not a sealed hotline item") from error
    if context.owner is not None and owner != context.owner:
        raise SealError("the sealed item belongs to something else than what points at it")
    period_private = periods.private_key(period)
    try:
        shared = period_private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        key = derive_item_key(shared, ephemeral_public, raw_public_bytes(period_private.public_key()), SEAL_V3)
        return AESGCM(key).decrypt(nonce, body, v3_associated_data(context, owner, period)), owner
    except (InvalidTag, ValueError) as error:
        raise SealError("the sealed item is damaged, or belongs to another case, kind, blob, period or key") from error


def unseal(private_key: X25519PrivateKey, sealed: bytes, context: SealContext, periods: PeriodKeys | None = None) -> bytes:
    return unseal_with_owner(private_key, sealed, context, periods)[0]


def _context(item: SealedItem, owner: str | None) -> SealContext:
    return SealContext(item.case.reference, item.kind, item.blob_key, owner)


def _periods(private_key: X25519PrivateKey, periods: "PeriodKeys | KeyStore | None") -> PeriodKeys | None:
    return PeriodKeys(private_key, periods) if isinstance(periods, KeyStore) else periods


def open_item(session: Session, private_key: X25519PrivateKey, blobs: BlobStore, item: SealedItem,
              owner: str | None = None, periods: "PeriodKeys | KeyStore | None" = None) -> bytes:
    """owner: what the item was reached through (storage.cases.take_owner(...) and the like), which a
    v2 or v3 seal must name; None only where nothing points at the item (an export of a whole case).
    periods: the key store (or keys already opened from it), for v3 items."""
    return unseal(private_key, blobs.get(session, item.blob_key), _context(item, owner), _periods(private_key, periods))


def open_item_with_owner(session: Session, private_key: X25519PrivateKey, blobs: BlobStore,
                         item: SealedItem, periods: "PeriodKeys | KeyStore | None" = None) -> tuple[bytes, str | None]:
    """The plaintext and the (authenticated) owner its seal names, for an export of every item."""
    return unseal_with_owner(private_key, blobs.get(session, item.blob_key), _context(item, None),
                             _periods(private_key, periods))


@dataclass(frozen=True)
class Opener:
    """One signed-in handler's power to open sealed items, for the length of one request."""

    private_key: X25519PrivateKey
    blobs: BlobStore
    periods: KeyStore | None = None
    _period_keys: dict = field(default_factory=dict, repr=False, compare=False)

    def open(self, session: Session, item: SealedItem, owner: str) -> bytes:
        """owner: what points at the item, which its seal must name (storage.cases.take_owner etc.)."""
        keys = self._period_keys.setdefault("keys", PeriodKeys(self.private_key, self.periods))
        return open_item(session, self.private_key, self.blobs, item, owner, keys)

    @property
    def public_key(self) -> X25519PublicKey:
        return self.private_key.public_key()


# --- a rotated hotline key's successor (console/rotation.py) ----------------------------------------

_SUCCESSOR_INFO = b"hotline key successor v1"


def seal_successor(old_public: X25519PublicKey, new_private: X25519PrivateKey) -> bytes:
    """The new hotline private key sealed to the old public key, for accounts to take up at sign-in."""
    recipient, new_public = raw_public_bytes(old_public), raw_public_bytes(new_private.public_key())
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = raw_public_bytes(ephemeral.public_key())
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient,
               info=_SUCCESSOR_INFO).derive(ephemeral.exchange(old_public))
    nonce = os.urandom(12)
    return ephemeral_public + nonce + AESGCM(key).encrypt(nonce, _raw_private(new_private),
                                                          _SUCCESSOR_INFO + recipient + new_public)


def open_successor(old_private: X25519PrivateKey, sealed: bytes, new_public: bytes) -> X25519PrivateKey:
    recipient = raw_public_bytes(old_private.public_key())
    try:
        ephemeral_public, nonce, body = sealed[:32], sealed[32:44], sealed[44:]
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient, info=_SUCCESSOR_INFO
                   ).derive(old_private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public)))
        raw = AESGCM(key).decrypt(nonce, body, _SUCCESSOR_INFO + recipient + new_public)
    except (InvalidTag, ValueError) as error:
        raise KeyUnwrapError("the successor key did not open") from error
    return _checked_private_key(raw, new_public, KeyUnwrapError("the successor key is inconsistent"))


# --- the operator's key file ------------------------------------------------------------------------

def unwrap_private_key(text: str, passphrase: str) -> X25519PrivateKey:
    try:
        document = json.loads(text)
        if document["format"] != WRAP_FORMAT:
            raise ValueError(document["format"])
        kdf = document["kdf"]
        key = scrypt_key(passphrase, b64decode(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
        public = b64decode(document["public_key"])
        raw = AESGCM(key).decrypt(
            b64decode(document["nonce"]), b64decode(document["wrapped_key"]), WRAP_FORMAT.encode() + public
        )
    except InvalidTag as error:
        raise KeyFileError("wrong passphrase for the private key") from error
    except (ValueError, KeyError, TypeError) as error:
        raise KeyFileError("the private key file is not a hotline private key") from error
    return _checked_private_key(raw, public, KeyFileError("the private key file is inconsistent"))


def load_private_key(path: Path, passphrase: str) -> X25519PrivateKey:
    try:
        text = Path(path).read_text()
    except FileNotFoundError as error:
        raise KeyFileError(f"private key file {path} does not exist") from error
    return unwrap_private_key(text, passphrase)


# --- each account's copy, under its password -----------------------------------------------------------

@dataclass(frozen=True)
class PasswordKdf:
    """argon2id cost for deriving an account's wrapping key. The default costs about 0.2 s and 64 MiB,
    once per sign-in; tests use a cheaper one (only HOTLINE_ENV=test may)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 1

    def derive(self, password: str, salt: bytes) -> bytes:
        return hash_secret_raw(
            password.encode(), salt, time_cost=self.time_cost, memory_cost=self.memory_kib,
            parallelism=self.parallelism, hash_len=32, type=Type.ID,
        )


def _raw_private(private_key: X25519PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _checked_private_key(raw: bytes, public: bytes, error: Exception) -> X25519PrivateKey:
    private_key = X25519PrivateKey.from_private_bytes(raw)
    if not hmac.compare_digest(raw_public_bytes(private_key.public_key()), public):
        raise error
    return private_key


def _account_ad(user_id: int, public: bytes) -> bytes:
    return f"{_ACCOUNT_FORMAT}|user={user_id}|".encode() + public


def wrap_for_account(private_key: X25519PrivateKey, password: str, user_id: int, kdf: PasswordKdf) -> str:
    salt, nonce = os.urandom(16), os.urandom(12)
    public = raw_public_bytes(private_key.public_key())
    wrapped = AESGCM(kdf.derive(password, salt)).encrypt(nonce, _raw_private(private_key), _account_ad(user_id, public))
    return json.dumps({
        "format": _ACCOUNT_FORMAT,
        "kdf": {"name": "argon2id", "t": kdf.time_cost, "m": kdf.memory_kib, "p": kdf.parallelism,
                "salt": b64encode(salt).decode()},
        "public_key": b64encode(public).decode(),
        "nonce": b64encode(nonce).decode(),
        "wrapped_key": b64encode(wrapped).decode(),
    })


def unwrap_for_account(text: str, password: str, user_id: int) -> X25519PrivateKey:
    try:
        document = json.loads(text)
        if document["format"] != _ACCOUNT_FORMAT:
            raise ValueError("format")
        params = document["kdf"]
        kdf = PasswordKdf(int(params["t"]), int(params["m"]), int(params["p"]))
        public = b64decode(document["public_key"])
        raw = AESGCM(kdf.derive(password, b64decode(params["salt"]))).decrypt(
            b64decode(document["nonce"]), b64decode(document["wrapped_key"]), _account_ad(user_id, public)
        )
    except (InvalidTag, ValueError, KeyError, TypeError) as error:
        raise KeyUnwrapError("the account's key did not open") from error
    return _checked_private_key(raw, public, KeyUnwrapError("the account's key is inconsistent"))


# --- an invitation's copy, under the enrolment link's token -------------------------------------------

def _token_key(token: str, purpose: bytes) -> bytes:
    # The token is 256 random bits, so a plain HKDF is enough (no password stretching needed).
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(token.encode())


def wrap_for_invitation(private_key: X25519PrivateKey, token: str, user_id: int) -> str:
    nonce = os.urandom(12)
    public = raw_public_bytes(private_key.public_key())
    ad = f"{_INVITE_FORMAT}|user={user_id}|".encode() + public
    wrapped = AESGCM(_token_key(token, _INVITE_FORMAT.encode())).encrypt(nonce, _raw_private(private_key), ad)
    return json.dumps({"format": _INVITE_FORMAT, "public_key": b64encode(public).decode(),
                       "nonce": b64encode(nonce).decode(), "wrapped_key": b64encode(wrapped).decode()})


def unwrap_for_invitation(text: str, token: str, user_id: int) -> X25519PrivateKey:
    try:
        document = json.loads(text)
        if document["format"] != _INVITE_FORMAT:
            raise ValueError("format")
        public = b64decode(document["public_key"])
        ad = f"{_INVITE_FORMAT}|user={user_id}|".encode() + public
        raw = AESGCM(_token_key(token, _INVITE_FORMAT.encode())).decrypt(
            b64decode(document["nonce"]), b64decode(document["wrapped_key"]), ad
        )
    except (InvalidTag, ValueError, KeyError, TypeError) as error:
        raise KeyUnwrapError("the invitation's key did not open") from error
    return _checked_private_key(raw, public, KeyUnwrapError("the invitation's key is inconsistent"))


# --- a signed-in session's copy, under the secret in its cookie --------------------------------------

def seal_for_session(private_key: X25519PrivateKey, cookie_secret: bytes, session_id: str) -> bytes:
    nonce = os.urandom(12)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SESSION_FORMAT).derive(cookie_secret)
    return nonce + AESGCM(key).encrypt(nonce, _raw_private(private_key), _SESSION_FORMAT + session_id.encode())


def open_for_session(sealed: bytes, cookie_secret: bytes, session_id: str) -> X25519PrivateKey:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SESSION_FORMAT).derive(cookie_secret)
    try:
        raw = AESGCM(key).decrypt(sealed[:12], sealed[12:], _SESSION_FORMAT + session_id.encode())
    except (InvalidTag, ValueError) as error:
        raise KeyUnwrapError("the session's key did not open") from error
    return X25519PrivateKey.from_private_bytes(raw)
