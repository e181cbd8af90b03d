"""TOTP second factor (RFC 6238 via pyotp). The secret is kept encrypted under the console's own secret
key (never the hotline key), and the last accepted time step is remembered so a code already used, or
one older than it, is refused even within its 30-second window."""
from __future__ import annotations

import os
import time
from hashlib import sha256

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.models import User

ISSUER = "Hotline console"
# One step either side for a phone whose clock is a little out; replay is stopped by totp_last_step.
VALID_WINDOW = 1


def _key(console_secret_key: str) -> bytes:
    return sha256(b"hotline-console-totp|" + console_secret_key.encode()).digest()


def new_secret() -> str:
    return pyotp.random_base32(32)


def seal_secret(secret: str, console_secret_key: str, user_id: int) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_key(console_secret_key)).encrypt(nonce, secret.encode(), f"totp|{user_id}".encode())


def open_secret(sealed: bytes, console_secret_key: str, user_id: int) -> str:
    try:
        return AESGCM(_key(console_secret_key)).decrypt(sealed[:12], sealed[12:], f"totp|{user_id}".encode()).decode()
    except (InvalidTag, ValueError) as error:
        raise ValueError("the stored TOTP secret does not open") from error


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """The enrolment QR code as an SVG data URI, drawn by the console itself (no third-party service)."""
    return segno.make(uri, error="m").svg_data_uri(scale=6, border=2)


def accepted_step(secret: str, code: str, last_step: int | None, now: float | None = None) -> int | None:
    """The time step the code belongs to, if it is right and newer than the last one used; else None."""
    code = (code or "").strip().replace(" ", "")
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    now = time.time() if now is None else now
    totp = pyotp.TOTP(secret)
    current = int(now // totp.interval)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            if last_step is not None and step <= last_step:
                return None
            return step
    return None


def set_secret(user: User, secret: str, console_secret_key: str) -> None:
    user.totp_secret_sealed = seal_secret(secret, console_secret_key, user.id)
    user.totp_last_step = None


def verify_and_consume(user: User, code: str, console_secret_key: str, now: float | None = None) -> bool:
    """Check a code against the account's secret; a right code is used up. The caller commits."""
    if user.totp_secret_sealed is None:
        return False
    secret = open_secret(user.totp_secret_sealed, console_secret_key, user.id)
    step = accepted_step(secret, code, user.totp_last_step, now)
    if step is None:
        return False
    user.totp_last_step = step
    return True
