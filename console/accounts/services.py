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
from datetime import timedelta
from hashlib import sha256

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.keys import PasswordKdf, unwrap_for_account, unwrap_for_invitation, wrap_for_account, wrap_for_invitation
from storage.models import Role, User, utcnow

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
    return session.scalar(select(User).where(User.username == username.strip().lower()))


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
    if not display_name or len(display_name) > 128:
        raise AccountError("Give the person's name (up to 128 characters).")
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
