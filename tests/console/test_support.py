"""The console tests' own helpers: a person made with a random password is always one the console accepts."""
from __future__ import annotations

import secrets

from storage.models import Role


def test_a_random_password_that_happens_to_hold_the_user_name_is_drawn_again(people, monkeypatch):
    # As in a CI run: "pw-QQ9xkE4ADaUWleAg" holds "ada", which the console refuses for the user ada.
    draws, real = iter(["QQ9xkE4ADaUWleAg", "QQ9xkE4BDbUWleAg"]), secrets.token_urlsafe
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n=None: next(draws, None) or real(n))  # then the real ones
    ada = people.make(Role.HANDLER, "ada")
    assert "ada" not in ada.password.lower()
