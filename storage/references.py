"""Case references and PINs, the two things a caller keys in to add to an earlier report.

A reference is 7 random digits and a Damm check digit, which catches every single mistyped digit and
every swap of two neighbours before the database is asked. The PIN is derived from the reference with
the server's secret key (HMAC), so it is never stored anywhere, can be read back as often as the caller
asks, and a copy of the database alone reveals none.
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
PIN_LENGTH = 4


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


def pin_for(secret_key: str, reference: str) -> str:
    number = int.from_bytes(keyed_digest(secret_key, "case-pin", reference)[:8], "big")
    return str(number % 10**PIN_LENGTH).zfill(PIN_LENGTH)


def pin_matches(secret_key: str, reference: str, entered: str) -> bool:
    return hmac.compare_digest(pin_for(secret_key, reference).encode(), entered.encode())
