"""Security keys (WebAuthn, with py_webauthn): options for the browser, and checking what it returns.

The challenge for each ceremony lives in the server-side session dict (never in a page or cookie) and is
used once. Everything the browser sends is untrusted: any way it fails to parse or verify becomes
WebAuthnRefused, whose message is safe to show, so a bad request is a 400 and never a 500.
"""
from __future__ import annotations

import binascii
import hmac
import logging
import time
from dataclasses import dataclass
from hashlib import sha256

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from storage.models import User, WebAuthnCredential

RP_NAME = "Hotline console"
CEREMONY_TIMEOUT_MS = 120_000
# A challenge older than this is refused even if unused (the browser gives up long before).
CHALLENGE_LIFETIME_SECONDS = 300
_BAD_BASE64 = (ValueError, TypeError, binascii.Error)
log = logging.getLogger("hotline.console.webauthn")


class WebAuthnRefused(Exception):
    """The browser's answer did not verify; the message is safe to show."""


def _refused(error: Exception) -> WebAuthnRefused:
    # py_webauthn parses CBOR, ASN.1 and certificates from the browser's answer, and not every way
    # that can fail is one of its own exceptions: any failure there is a refusal (never a 500). An
    # error that is not the library's own is logged by type only, in case it is a bug of ours.
    if not isinstance(error, WebAuthnException):
        log.info("a security key's answer failed to parse (%s)", type(error).__name__)
    return WebAuthnRefused("The security key's answer did not verify.")


@dataclass(frozen=True)
class RelyingParty:
    id: str  # the console's host name
    origin: str  # the console's public URL, exactly as the browser reports it

    @classmethod
    def from_settings(cls, settings) -> "RelyingParty":
        return cls(settings.rp_id, settings.public_url)


@dataclass(frozen=True)
class Challenge:
    """One ceremony's challenge, as kept in the session dict (JSON-safe) between options and verify."""

    value: bytes
    user_id: int
    issued_at: float

    def to_session(self) -> dict:
        return {"challenge": bytes_to_base64url(self.value), "user_id": self.user_id, "issued_at": self.issued_at}

    @classmethod
    def from_session(cls, data, user_id: int, now: float | None = None) -> "Challenge | None":
        """The stored challenge if it is well-formed, for this account and still fresh; else None."""
        if not isinstance(data, dict):
            return None
        try:
            challenge = cls(base64url_to_bytes(data["challenge"]), int(data["user_id"]), float(data["issued_at"]))
        except (KeyError, TypeError, ValueError, OverflowError, binascii.Error):
            return None
        now = time.time() if now is None else now
        if challenge.user_id != user_id or not 0 <= now - challenge.issued_at <= CHALLENGE_LIFETIME_SECONDS:
            return None
        return challenge


def user_handle(user: User, console_secret_key: str) -> bytes:
    """A stable, opaque handle for the account (the spec asks for no name or e-mail in it)."""
    return hmac.new(sha256(b"webauthn-user-handle|" + console_secret_key.encode()).digest(),
                    str(user.id).encode(), sha256).digest()


def _descriptors(user: User) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=key.credential_id) for key in user.credentials]


# --- signing in -----------------------------------------------------------------------------------

def assertion_options(rp: RelyingParty, user: User) -> tuple[str, Challenge]:
    """JSON for navigator.credentials.get(), limited to this account's keys, and its challenge."""
    options = generate_authentication_options(
        rp_id=rp.id, timeout=CEREMONY_TIMEOUT_MS, allow_credentials=_descriptors(user),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return options_to_json(options), Challenge(options.challenge, user.id, time.time())


@dataclass(frozen=True)
class UsedKey:
    key: WebAuthnCredential
    new_sign_count: int


def verify_assertion(rp: RelyingParty, challenge: Challenge, user: User, credential: dict) -> UsedKey:
    raw_id = credential.get("rawId") if isinstance(credential, dict) else None
    try:
        raw = base64url_to_bytes(raw_id) if isinstance(raw_id, str) else None
    except _BAD_BASE64:
        raw = None
    key = next((key for key in user.credentials if raw is not None and hmac.compare_digest(key.credential_id, raw)), None)
    if key is None:
        raise WebAuthnRefused("That security key is not registered to this account.")
    try:
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge.value, expected_rp_id=rp.id,
            expected_origin=rp.origin, credential_public_key=key.public_key,
            credential_current_sign_count=key.sign_count or 0,
        )
    except Exception as error:  # noqa: BLE001 - see _refused
        # (A counter that did not go up means a cloned key or a replayed answer.)
        raise _refused(error) from error
    return UsedKey(key, verified.new_sign_count)


# --- adding a key -----------------------------------------------------------------------------------

def attestation_options(rp: RelyingParty, user: User, console_secret_key: str) -> tuple[str, Challenge]:
    """JSON for navigator.credentials.create(): a non-discoverable key, the account's keys excluded."""
    options = generate_registration_options(
        rp_id=rp.id, rp_name=RP_NAME, user_name=user.username, user_display_name=user.display_name,
        user_id=user_handle(user, console_secret_key), timeout=CEREMONY_TIMEOUT_MS,
        exclude_credentials=_descriptors(user),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    return options_to_json(options), Challenge(options.challenge, user.id, time.time())


@dataclass(frozen=True)
class NewSecurityKey:
    credential_id: bytes
    public_key: bytes
    sign_count: int


def verify_attestation(rp: RelyingParty, challenge: Challenge, user: User, credential: dict) -> NewSecurityKey:
    if challenge.user_id != user.id:
        raise WebAuthnRefused("That answer was for another account.")
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge.value, expected_rp_id=rp.id,
            expected_origin=rp.origin,
        )
    except Exception as error:  # noqa: BLE001 - see _refused
        raise _refused(error) from error
    return NewSecurityKey(verified.credential_id, verified.credential_public_key, verified.sign_count)

