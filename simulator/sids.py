"""Twilio-shaped identifiers: a two-letter prefix and 32 lowercase hex digits."""
import re
import secrets

SID_PATTERN = r"[A-Z]{2}[0-9a-f]{32}"


def new_sid(prefix: str) -> str:
    if not re.fullmatch(r"[A-Z]{2}", prefix):
        raise ValueError(f"a Twilio SID prefix is two capital letters, not {prefix!r}")
    return prefix + secrets.token_hex(16)


def new_account_sid() -> str:
    return new_sid("AC")


def new_auth_token() -> str:
    return secrets.token_hex(16)
