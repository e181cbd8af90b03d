"""A security key as the second factor, with Chromium's virtual authenticator standing in for the key."""
from __future__ import annotations


def test_a_handler_adds_a_security_key_and_signs_in_with_it(people, at_console):
    hana = at_console(people.handler("hana"))
    hana.signs_in()
    hana.browser.add_security_key()
    hana.adds_security_key("Blue key")
    assert len(hana.browser.credentials()) == 1

    hana.signs_out()
    hana.signs_in_with_security_key()
    assert hana.browser.credentials()[0]["signCount"] >= 1

