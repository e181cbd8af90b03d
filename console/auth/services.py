"""Signing in, as plain Python: the password step, the second factor, and lock-out with back-off.

One counter per account holds consecutive failures of either step; only a complete sign-in resets it,
so someone who knows the password cannot try codes forever by starting again. From the fifth failure
the account is locked for a minute, doubling with each further failure up to an hour, and while it is
locked even the right password is refused. Every refusal is audited with a reason (never the typed
values); the sign-in page itself shows one neutral message whatever the reason, so it cannot be used
to learn which user names exist. The caller commits, together with the audit entries written here.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.accounts.services import (
    LARGEST_ID,
    AccountError,
    change_password,
    complete_enrolment,
    find_invitation,
    find_user,
    password_matches,
    token_hash,
    unwrap_account_key,
)
from console.audit.services import record
from console.auth import totp, webauthn
from console.auth.webauthn import Challenge, NewSecurityKey, RelyingParty, WebAuthnRefused
from console.keys import KeyUnwrapError, PasswordKdf
from console.rotation import upgrade_account_key
from storage.keystore import KeyStore
from storage.models import AuditAction, SessionEnd, User, WebAuthnCredential, utcnow

LOCK_AFTER_FAILURES = 5
FIRST_LOCK = timedelta(minutes=1)
LONGEST_LOCK = timedelta(hours=1)
# Who is acting before the password is proven: not the account (they may be anyone).
VISITOR = "visitor"


class Refusal(str, Enum):
    """Why a step was refused: recorded in the audit trail, never shown on the sign-in page."""

    UNKNOWN_USER = "unknown-user"
    WRONG_PASSWORD = "wrong-password"
    NOT_ENROLLED = "not-enrolled"
    DISABLED = "disabled"
    LOCKED = "locked"
    KEY_DID_NOT_OPEN = "key-did-not-open"
    WRONG_CODE = "wrong-code"
    UNREADABLE_SECRET = "unreadable-secret"
    SECURITY_KEY_REFUSED = "security-key-refused"


class NextStep(str, Enum):
    SECOND_FACTOR = "second-factor"
    SET_UP_SECOND_FACTOR = "set-up-second-factor"  # enrolled, or reset by an admin: no factor yet


@dataclass(frozen=True)
class PasswordAccepted:
    user: User
    private_key: X25519PrivateKey
    next_step: NextStep


@dataclass(frozen=True)
class Refused:
    reason: Refusal
    locked: bool = False  # the account is locked now (so a pending sign-in should be ended)


# --- lock-out --------------------------------------------------------------------------------------

def lock_length(failures: int) -> timedelta | None:
    """How long the account locks after this many consecutive failures (None: not yet)."""
    if failures < LOCK_AFTER_FAILURES:
        return None
    doublings = min(failures - LOCK_AFTER_FAILURES, 12)  # 2**12 minutes is already past the cap
    return min(FIRST_LOCK * 2 ** doublings, LONGEST_LOCK)


def is_locked(user: User, now: datetime | None = None) -> bool:
    return user.locked_until is not None and user.locked_until > (now or utcnow())


def locked_row(session: Session, user_id: int) -> User | None:
    """The account's row, re-read and locked FOR UPDATE (a no-op on SQLite, which serialises writes),
    so two requests cannot both use one TOTP code or both miss each other's failure."""
    return session.scalar(
        select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
    )


def _failed(session: Session, user: User, action: AuditAction, reason: Refusal, *, actor: User | None) -> Refused:
    user.failed_sign_ins = (user.failed_sign_ins or 0) + 1
    record(session, action, actor=actor, actor_label=VISITOR, target_user_id=user.id,
           detail={"reason": reason.value, "failures": user.failed_sign_ins})
    length = lock_length(user.failed_sign_ins)
    if length is None:
        return Refused(reason)
    user.locked_until = utcnow() + length
    record(session, AuditAction.ACCOUNT_LOCKED, actor_label="system", target_user_id=user.id,
           detail={"failures": user.failed_sign_ins, "minutes": int(length.total_seconds() // 60)})
    return Refused(reason, locked=True)


def _refused_without_counting(session: Session, user: User | None, action: AuditAction, reason: Refusal,
                              *, actor: User | None = None) -> Refused:
    # Attempts on a locked or disabled account are not guesses that could succeed, so they do not
    # push the back-off further; they are still in the trail.
    record(session, action, actor=actor, actor_label=VISITOR, target_user_id=user.id if user else None,
           detail={"reason": reason.value})
    return Refused(reason, locked=reason is Refusal.LOCKED)


# --- the password step -------------------------------------------------------------------------------

def check_password(session: Session, username: str, password: str, kdf: PasswordKdf,
                   periods: KeyStore | None = None) -> PasswordAccepted | Refused:
    """The first step. On the right password the account's copy of the key is unwrapped (audited), for
    the caller to hand to the session store; after a key rotation, the account takes up the new key here
    (console/rotation.py), while the password is at hand."""
    user = find_user(session, username)
    # Always one full hash check, whether or not the account exists, is locked or disabled.
    matches = password_matches(user, password, kdf)
    if user is None:
        return _refused_without_counting(session, None, AuditAction.SIGN_IN_FAILED, Refusal.UNKNOWN_USER)
    user = locked_row(session, user.id)
    if user.disabled_at is not None:
        return _refused_without_counting(session, user, AuditAction.SIGN_IN_FAILED, Refusal.DISABLED)
    if is_locked(user):
        return _refused_without_counting(session, user, AuditAction.SIGN_IN_FAILED, Refusal.LOCKED)
    if not matches:
        reason = Refusal.WRONG_PASSWORD if user.is_enrolled else Refusal.NOT_ENROLLED
        return _failed(session, user, AuditAction.SIGN_IN_FAILED, reason, actor=None)
    try:
        private_key = unwrap_account_key(user, password)
    except KeyUnwrapError:
        return _refused_without_counting(session, user, AuditAction.SIGN_IN_FAILED, Refusal.KEY_DID_NOT_OPEN)
    record(session, AuditAction.KEY_UNWRAPPED, actor=user, target_user_id=user.id, detail={"by": "password"})
    private_key = upgrade_account_key(session, periods, user, password, private_key, kdf)
    next_step = NextStep.SECOND_FACTOR if user.has_second_factor else NextStep.SET_UP_SECOND_FACTOR
    return PasswordAccepted(user, private_key, next_step)


# --- the second factor ----------------------------------------------------------------------------

def finish_sign_in(session: Session, user: User, method: str) -> None:
    user.failed_sign_ins = 0
    user.locked_until = None
    user.last_sign_in_at = utcnow()
    record(session, AuditAction.SIGN_IN, actor=user, target_user_id=user.id, detail={"method": method})


def accept_totp(session: Session, user_id: int, code: str, console_secret_key: str) -> User | Refused:
    """A TOTP code for the pending account: the account on success (signed in, for the caller to
    complete the session), else why not."""
    user = locked_row(session, user_id)
    if user is None or user.disabled_at is not None:
        return _refused_without_counting(session, user, AuditAction.SECOND_FACTOR_FAILED, Refusal.DISABLED, actor=user)
    if is_locked(user):
        return _refused_without_counting(session, user, AuditAction.SECOND_FACTOR_FAILED, Refusal.LOCKED, actor=user)
    try:
        accepted = totp.verify_and_consume(user, code, console_secret_key)
    except ValueError:
        # The stored secret does not open (the console's secret key changed): not the person's fault.
        return _refused_without_counting(session, user, AuditAction.SECOND_FACTOR_FAILED,
                                         Refusal.UNREADABLE_SECRET, actor=user)
    if not accepted:
        return _failed(session, user, AuditAction.SECOND_FACTOR_FAILED, Refusal.WRONG_CODE, actor=user)
    finish_sign_in(session, user, "totp")
    return user


def accept_security_key(session: Session, user_id: int, rp: RelyingParty, challenge: Challenge,
                        credential: dict) -> User | Refused:
    """A WebAuthn assertion for the pending account; its signature counter is checked and stored."""
    user = locked_row(session, user_id)
    if user is None or user.disabled_at is not None:
        return _refused_without_counting(session, user, AuditAction.SECOND_FACTOR_FAILED, Refusal.DISABLED, actor=user)
    if is_locked(user):
        return _refused_without_counting(session, user, AuditAction.SECOND_FACTOR_FAILED, Refusal.LOCKED, actor=user)
    try:
        used = webauthn.verify_assertion(rp, challenge, user, credential)
    except WebAuthnRefused:
        return _failed(session, user, AuditAction.SECOND_FACTOR_FAILED, Refusal.SECURITY_KEY_REFUSED, actor=user)
    used.key.sign_count = used.new_sign_count
    used.key.last_used_at = utcnow()
    finish_sign_in(session, user, "webauthn")
    return user


def signed_out(session: Session, user_id: int) -> None:
    record(session, AuditAction.SIGN_OUT, actor=session.get(User, user_id), target_user_id=user_id)


class AlreadySetUp(Exception):
    """The account has a second factor already: it is used, not replaced, at sign-in."""


def set_up_totp(session: Session, user_id: int, secret: str, code: str, console_secret_key: str) -> User | None:
    """Confirm a new TOTP secret with a code from it; the code's step is used up and the person is
    signed in. None if the code does not fit (a typo is not counted as a failure: the secret was the
    console's own, so a guess gains nothing)."""
    user = locked_row(session, user_id)
    if user is None or user.disabled_at is not None or is_locked(user):
        return None
    if user.has_second_factor:
        raise AlreadySetUp()
    step = totp.accepted_step(secret, code, None)
    if step is None:
        return None
    totp.set_secret(user, secret, console_secret_key)
    user.totp_last_step = step
    record(session, AuditAction.SECOND_FACTOR_ADDED, actor=user, target_user_id=user.id, detail={"kind": "totp"})
    finish_sign_in(session, user, "totp")
    return user


# --- enrolment by link ----------------------------------------------------------------------------

def open_invitation(session: Session, token: str) -> User | None:
    """The account a live enrolment link belongs to, locked so the link can be used only once."""
    user = find_invitation(session, token)
    if user is None:
        return None
    user = locked_row(session, user.id)
    # Re-checked under the lock: a concurrent enrolment may have used the link meanwhile.
    if user is None or user.invite_token_hash != token_hash(token):
        return None
    return user


def enrol(session: Session, user: User, token: str, password: str, kdf: PasswordKdf,
          periods: KeyStore | None = None) -> X25519PrivateKey:
    """Raises AccountError (a message for the form) or KeyUnwrapError (a damaged link). An invitation
    made before a key rotation holds the old key: the new one is taken up here."""
    private_key = complete_enrolment(session, user, token, password, kdf)
    private_key = upgrade_account_key(session, periods, user, password, private_key, kdf)
    user.failed_sign_ins, user.locked_until = 0, None
    record(session, AuditAction.ACCOUNT_ENROLLED, actor=user, target_user_id=user.id)
    return private_key


# --- a person's own account -----------------------------------------------------------------------

def change_own_password(session: Session, user: User, current: str, new: str, kdf: PasswordKdf,
                        sessions, keep_row_id: str | None) -> int:
    """A new password re-wraps the account's key copy; the person's other sessions end (whoever might
    have learnt the old password is put out). Returns how many ended. Raises AccountError."""
    change_password(user, current, new, kdf)
    ended = sessions.end_for_user(session, user.id, SessionEnd.PASSWORD_CHANGED, keep_row_id=keep_row_id)
    record(session, AuditAction.PASSWORD_CHANGED, actor=user, target_user_id=user.id, detail={"sessions_ended": ended})
    return ended


def second_factor_count(user: User) -> int:
    return (1 if user.totp_secret_sealed is not None else 0) + len(user.credentials)


def add_security_key(session: Session, user: User, rp: RelyingParty, challenge: Challenge, credential: dict,
                     label: str) -> WebAuthnCredential:
    """Raises WebAuthnRefused with a message that is safe to show."""
    new: NewSecurityKey = webauthn.verify_attestation(rp, challenge, user, credential)
    taken = session.scalar(select(WebAuthnCredential.id).where(WebAuthnCredential.credential_id == new.credential_id))
    if taken is not None:
        raise WebAuthnRefused("That security key is registered already.")
    key = WebAuthnCredential(user_id=user.id, credential_id=new.credential_id, public_key=new.public_key,
                             sign_count=new.sign_count, label=label)
    session.add(key)
    session.flush()
    record(session, AuditAction.SECOND_FACTOR_ADDED, actor=user, target_user_id=user.id,
           detail={"kind": "webauthn", "key_id": key.id})
    return key


def remove_security_key(session: Session, user: User, key_id: int) -> None:
    if not 0 < key_id <= LARGEST_ID:
        raise AccountError("There is no such security key on your account.")
    key = session.scalar(select(WebAuthnCredential).where(
        WebAuthnCredential.id == key_id, WebAuthnCredential.user_id == user.id))
    if key is None:
        raise AccountError("There is no such security key on your account.")
    if second_factor_count(user) <= 1:
        raise AccountError("That is your only second factor, so it cannot be removed.")
    user.credentials.remove(key)
    session.flush()
    record(session, AuditAction.SECOND_FACTOR_REMOVED, actor=user, target_user_id=user.id,
           detail={"kind": "webauthn", "key_id": key_id})
