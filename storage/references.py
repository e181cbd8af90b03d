"""Case references and PINs, the two things a caller keys in to add to an earlier report.

A reference is 7 random digits and a Damm check digit, which catches every single mistyped digit and
every swap of two neighbours before the database is asked. The PIN is derived from the reference with
the server's secret key (HMAC), so it is never stored anywhere, can be read back as often as the caller
asks, and a copy of the database alone reveals none.

PINs are 6 digits. Cases opened before that keep their 4-digit PIN (Case.pin_length says which): both are
the same HMAC taken modulo 10**length, so an old caller's note stays right. The lock-out, not the PIN,
keeps out someone who holds a reference (10 failures in all, then only a person unlocks it: see
storage/cases.py), so a guesser's chance is 10 in 10**length: 1 in 100,000 with 6 digits against 1 in
1,000 with 4, for two more digits read out in two groups of three and keyed in once per call-back.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from storage.crypto import keyed_digest

_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)
REFERENCE_LENGTH = 8
PIN_LENGTH = 6  # every case opened from migration 0004 on
LEGACY_PIN_LENGTH = 4  # cases opened before it keep the PIN they were given
PIN_LENGTHS = (LEGACY_PIN_LENGTH, PIN_LENGTH)


def damm_check_digit(digits: str) -> str:
    interim = 0
    for digit in digits:
        interim = _DAMM[interim][int(digit)]
    return str(interim)


@dataclass(frozen=True)
class CaseReference:
    digits: str

    @classmethod
    def generate(cls) -> "CaseReference":
        # No leading zero: a reference read aloud or written down loses leading zeros too easily.
        body = str(secrets.randbelow(9) + 1) + "".join(secrets.choice("0123456789") for _ in range(6))
        return cls(body + damm_check_digit(body))

    @staticmethod
    def is_well_formed(text: str) -> bool:
        return (
            len(text) == REFERENCE_LENGTH
            and text.isascii()
            and text.isdigit()
            and damm_check_digit(text) == "0"
        )

    def __str__(self) -> str:
        return self.digits


def pin_for(secret_key: str, reference: str, length: int = PIN_LENGTH) -> str:
    """The case's PIN; `length` is the case's pin_length (4 only for cases opened before 6-digit PINs)."""
    if length not in PIN_LENGTHS:
        raise ValueError("a PIN is 4 or 6 digits")
    number = int.from_bytes(keyed_digest(secret_key, "case-pin", reference)[:8], "big")
    return str(number % 10**length).zfill(length)


def pin_matches(secret_key: str, reference: str, entered: str, length: int = PIN_LENGTH) -> bool:
    """Constant time. Only the case's own length is accepted: a 6-digit case refuses its last 4 digits."""
    return hmac.compare_digest(pin_for(secret_key, reference, length).encode(), entered.encode())
