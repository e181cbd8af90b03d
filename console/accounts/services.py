"""Accounts and their copies of the hotline key: invitation, enrolment, password change, disabling.

Every account's copy of the private key is wrapped under its own password (console/keys.py). An
invitation carries a copy wrapped under the random token in its one-time link, made by the inviting
admin's unlocked session (or by the operator's key file, for the first admin); enrolment turns it into
the new account's own copy. The caller commits, together with the audit entry.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from hashlib import sha256

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.audit.services import record
from console.keys import PasswordKdf, unwrap_for_account, unwrap_for_invitation, wrap_for_account, wrap_for_invitation
from storage.models import (
    AuditAction,
    ConsoleSession,
    Role,
    SessionEnd,
    SessionStage,
    User,
    WebAuthnCredential,
    utcnow,
)

USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
MIN_PASSWORD_LENGTH = 12


class AccountError(Exception):
    """Something a person asked for that cannot be done; the message is safe to show them."""


def password_hasher(kdf: PasswordKdf) -> PasswordHasher:
    return PasswordHasher(time_cost=kdf.time_cost, memory_cost=kdf.memory_kib, parallelism=kdf.parallelism)


def hash_password(password: str, kdf: PasswordKdf) -> str:
    return password_hasher(kdf).hash(password)


def password_matches(user: User, password: str, kdf: PasswordKdf) -> bool:
    """Constant work whether or not the account has a password, so timing says nothing."""
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASHES.setdefault(
        kdf, hash_password(secrets.token_urlsafe(16), kdf))
    try:
        return password_hasher(kdf).verify(stored, password) and user is not None and user.password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


_DUMMY_HASHES: dict[PasswordKdf, str] = {}


def check_new_password(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > 1024:
        raise AccountError("That password is too long.")
    if username.lower() in password.lower():
        raise AccountError("The password must not contain your user name.")


def token_hash(token: str) -> str:
    return sha256(b"invite|" + token.encode()).hexdigest()


def find_user(session: Session, username: str) -> User | None:
    username = username.strip().lower()
    if not USERNAME.fullmatch(username):
        return None  # no account has such a name (and PostgreSQL refuses some characters, e.g. NUL)
    return session.scalar(select(User).where(User.username == username))


@dataclass(frozen=True)
class Invitation:
    user: User
    token: str  # goes into the link once; only its hash is stored


def invite(session: Session, private_key: X25519PrivateKey, username: str, display_name: str, role: Role,
           invited_by: User | None, valid_for: timedelta) -> Invitation:
    username = username.strip().lower()
    display_name = display_name.strip()
    if not USERNAME.fullmatch(username):
        raise AccountError("A user name is 2 to 32 lower-case letters, digits, dots, dashes or underscores, "
                           "starting with a letter.")
    if not display_name or len(display_name) > 128 or not display_name.isprintable():
        raise AccountError("Give the person's name (up to 128 characters, no control characters).")
    if find_user(session, username) is not None:
        raise AccountError("That user name is taken.")
    user = User(username=username, display_name=display_name, role=role,
                invited_by_id=invited_by.id if invited_by else None)
    session.add(user)
    session.flush()
    token = secrets.token_urlsafe(32)
    _set_invitation(user, private_key, token, valid_for)
    return Invitation(user, token)


def reissue_invitation(session: Session, private_key: X25519PrivateKey, user: User, valid_for: timedelta) -> Invitation:
    """A new link for someone who has not enrolled yet (the old link stops working)."""
    if user.is_enrolled:
        raise AccountError("That account has already enrolled.")
    token = secrets.token_urlsafe(32)
    _set_invitation(user, private_key, token, valid_for)
    return Invitation(user, token)


def _set_invitation(user: User, private_key: X25519PrivateKey, token: str, valid_for: timedelta) -> None:
    user.invite_token_hash = token_hash(token)
    user.invite_wrapped_key = wrap_for_invitation(private_key, token, user.id)
    user.invite_expires_at = utcnow() + valid_for


def find_invitation(session: Session, token: str) -> User | None:
    if not token or len(token) > 100:
        return None
    user = session.scalar(select(User).where(User.invite_token_hash == token_hash(token)))
    if user is None or user.disabled_at is not None or user.invite_expires_at is None or user.invite_expires_at < utcnow():
        return None
    return user


def complete_enrolment(session: Session, user: User, token: str, password: str, kdf: PasswordKdf) -> X25519PrivateKey:
    """Set the password and turn the invitation's key copy into the account's own. Returns the key, so
    the new session can hold it."""
    check_new_password(password, user.username)
    private_key = unwrap_for_invitation(user.invite_wrapped_key or "", token, user.id)
    user.password_hash = hash_password(password, kdf)
    user.wrapped_key = wrap_for_account(private_key, password, user.id, kdf)
    user.password_changed_at = utcnow()
    user.invite_token_hash = user.invite_wrapped_key = user.invite_expires_at = None
    return private_key


def unwrap_account_key(user: User, password: str) -> X25519PrivateKey:
    return unwrap_for_account(user.wrapped_key or "", password, user.id)


def change_password(user: User, current: str, new: str, kdf: PasswordKdf) -> None:
    if not password_matches(user, current, kdf):
        raise AccountError("Your current password is not right.")
    check_new_password(new, user.username)
    private_key = unwrap_account_key(user, current)
    user.password_hash = hash_password(new, kdf)
    user.wrapped_key = wrap_for_account(private_key, new, user.id, kdf)
    user.password_changed_at = utcnow()


def disable(user: User) -> None:
    """The account can no longer sign in, and its copy of the key is gone."""
    user.disabled_at = utcnow()
    user.wrapped_key = None
    user.invite_token_hash = user.invite_wrapped_key = user.invite_expires_at = None


# --- the admins' pages ------------------------------------------------------------------------------
# Each change below is made by a signed-in admin (`admin`), is audited with the account as its target,
# and leaves committing to the caller. `sessions` is the console's SessionStore.

LARGEST_ID = 2**31 - 1  # ids are 32-bit integers in PostgreSQL: a larger number in a URL is no account


class AccountState(str, Enum):
    INVITED = "invited"  # has a link (perhaps expired), no password yet
    ACTIVE = "active"
    LOCKED = "locked"  # too many failed sign-ins, for now
    DISABLED = "disabled"


def state_of(user: User, now: datetime | None = None) -> AccountState:
    if user.disabled_at is not None:
        return AccountState.DISABLED
    if not user.is_enrolled:
        return AccountState.INVITED
    if user.locked_until is not None and user.locked_until > (now or utcnow()):
        return AccountState.LOCKED
    return AccountState.ACTIVE


@dataclass(frozen=True)
class AccountRow:
    id: int
    username: str
    display_name: str
    role: Role
    state: AccountState
    has_totp: bool
    security_keys: int
    last_sign_in_at: datetime | None
    live_sessions: int
    invitation_expired: bool

    @property
    def second_factors(self) -> str:
        parts = (["app"] if self.has_totp else []) + (
            [f"{self.security_keys} security key{'s' if self.security_keys != 1 else ''}"] if self.security_keys else [])
        return ", ".join(parts) or "none"


def find_account(session: Session, user_id: int) -> User | None:
    if not 0 < user_id <= LARGEST_ID:
        return None
    return session.get(User, user_id)


def live_session_counts(session: Session, idle: timedelta, longest: timedelta) -> dict[int, int]:
    """Signed-in sessions per account that have not run out (ended ones are only marked when next used)."""
    now = utcnow()
    rows = session.execute(
        select(ConsoleSession.user_id, func.count())
        .where(ConsoleSession.ended_at.is_(None), ConsoleSession.stage == SessionStage.SIGNED_IN,
               ConsoleSession.last_seen_at > now - idle, ConsoleSession.signed_in_at > now - longest)
        .group_by(ConsoleSession.user_id)
    ).all()
    return {user_id: count for user_id, count in rows}


def list_accounts(session: Session, idle: timedelta, longest: timedelta) -> list[AccountRow]:
    now = utcnow()
    keys = dict(session.execute(
        select(WebAuthnCredential.user_id, func.count()).group_by(WebAuthnCredential.user_id)).all())
    live = live_session_counts(session, idle, longest)
    users = session.scalars(select(User).order_by(User.disabled_at.is_not(None), User.username)).all()
    return [
        AccountRow(user.id, user.username, user.display_name, user.role, state_of(user, now),
                   user.totp_secret_sealed is not None, keys.get(user.id, 0), user.last_sign_in_at,
                   live.get(user.id, 0),
                   invitation_expired=(not user.is_enrolled and user.disabled_at is None
                                       and (user.invite_expires_at is None or user.invite_expires_at < now)))
        for user in users
    ]


def invite_account(session: Session, admin: User, private_key: X25519PrivateKey, username: str,
                   display_name: str, role: Role, valid_for: timedelta) -> Invitation:
    """A new account with a one-time link; its key copy is wrapped from the admin's unlocked session."""
    invitation = invite(session, private_key, username, display_name, role, admin, valid_for)
    record(session, AuditAction.ACCOUNT_INVITED, actor=admin, target_user_id=invitation.user.id,
           detail={"role": role.value})
    return invitation


def disable_account(session: Session, admin: User, user: User, sessions) -> int:
    """The account can no longer sign in, its key copy is deleted and its sessions end at once."""
    if user.id == admin.id:
        raise AccountError("You cannot disable your own account; ask another admin.")
    if user.disabled_at is not None:
        raise AccountError("That account is disabled already.")
    disable(user)
    ended = sessions.end_for_user(session, user.id, SessionEnd.ACCOUNT_DISABLED)
    record(session, AuditAction.ACCOUNT_DISABLED, actor=admin, target_user_id=user.id,
           detail={"sessions_ended": ended})
    return ended


def enable_account(session: Session, admin: User, user: User, private_key: X25519PrivateKey,
                   valid_for: timedelta) -> Invitation:
    """A disabled account comes back only as a new invitation: its password and second factors are
    cleared (whoever had them before must not walk back in), and a new one-time link is made. An
    account that never enrolled simply gets a new link (the old one stops working)."""
    if user.disabled_at is None and user.is_enrolled:
        raise AccountError("That account is active already.")
    was_disabled = user.disabled_at is not None
    user.disabled_at = None
    user.password_hash = user.wrapped_key = user.password_changed_at = None
    _clear_second_factors(user)
    invitation = reissue_invitation(session, private_key, user, valid_for)
    if was_disabled:
        record(session, AuditAction.ACCOUNT_ENABLED, actor=admin, target_user_id=user.id)
    else:
        record(session, AuditAction.ACCOUNT_INVITED, actor=admin, target_user_id=user.id,
               detail={"role": user.role.value, "new_link": True})
    return invitation


def _clear_second_factors(user: User) -> int:
    keys = len(user.credentials)
    user.totp_secret_sealed, user.totp_last_step = None, None
    user.credentials.clear()
    # A lock from failed codes goes too: the reset is how a locked-out person gets back in.
    user.failed_sign_ins, user.locked_until = 0, None
    return keys


def reset_second_factor(session: Session, admin: User, user: User, sessions) -> int:
    """Clear the app secret and delete the security keys; the person sets up a new factor at their next
    sign-in, and their sessions end now. Returns how many sessions ended."""
    if user.id == admin.id:
        raise AccountError("Ask another admin to reset your own second factor.")
    if user.disabled_at is not None:
        raise AccountError("That account is disabled.")
    keys = _clear_second_factors(user)
    ended = sessions.end_for_user(session, user.id, SessionEnd.ENDED_BY_ADMIN)
    record(session, AuditAction.SECOND_FACTOR_RESET, actor=admin, target_user_id=user.id,
           detail={"security_keys": keys, "sessions_ended": ended})
    return ended


def end_sessions(session: Session, admin: User, user: User, sessions, keep_row_id: str | None) -> int:
    """End the account's sessions (an admin ending their own keeps the one they are using)."""
    ended = sessions.end_for_user(session, user.id, SessionEnd.ENDED_BY_ADMIN,
                                  keep_row_id=keep_row_id if user.id == admin.id else None)
    record(session, AuditAction.SESSIONS_ENDED, actor=admin, target_user_id=user.id, detail={"sessions_ended": ended})
    return ended


def change_role(session: Session, admin: User, user: User, role: Role) -> None:
    if role is user.role:
        raise AccountError(f"That account is {role.value} already.")
    if user.role is Role.ADMIN and _is_active(user):
        # Locked so that two admins demoting each other at once cannot both pass the check.
        admins = session.scalars(select(User).where(User.role == Role.ADMIN).with_for_update()
                                 .execution_options(populate_existing=True)).all()
        if not any(_is_active(other) for other in admins if other.id != user.id):
            raise AccountError("That would leave no active admin. Make someone else an admin first.")
    old = user.role
    user.role = role
    record(session, AuditAction.ROLE_CHANGED, actor=admin, target_user_id=user.id,
           detail={"from": old.value, "to": role.value})


def _is_active(user: User) -> bool:
    return user.disabled_at is None and user.is_enrolled
