"""Admins register the forces referrals go to, with the age public key to encrypt to; removing one keeps
the record of what was sent to it."""
from __future__ import annotations

import json

from pyrage import x25519
from sqlalchemy import select

from storage.models import AuditAction, AuditEntry, Force
from tests.console.cases.helpers import table_rows, texts_of_class
from tests.console.referrals.conftest import registered
from tests.console.referrals.support import exports


def test_an_admin_registers_a_force_with_its_public_key_and_it_is_audited(admin, console):
    recipient = str(x25519.Identity.generate().to_public())
    force_id = registered(console, admin, "Fenland Constabulary PSD", recipient)
    rows = table_rows(admin.get("/referrals/forces").get_data(as_text=True), "force-row")
    assert [(row["force-name"], row["force-key"]) for row in rows] == [("Fenland Constabulary PSD", recipient)]
    with console.db.session() as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == AuditAction.FORCE_REGISTERED))
    assert json.loads(entry.detail) == {"force": force_id, "with_key": True}


def test_a_key_that_is_not_an_age_recipient_is_refused(admin, console):
    for key, message in [("ssh-ed25519 AAAAC3Nza", "must be an age recipient"),
                         ("age1" + "q" * 58, "not a valid age recipient")]:
        response = admin.post_form("/referrals/forces", {"name": "Some Force", "recipient": key})
        assert response.status_code == 400 and message in response.get_data(as_text=True)
    response = admin.post_form("/referrals/forces", {"name": "", "recipient": ""})
    assert response.status_code == 400 and "Give the force&#39;s name." in response.get_data(as_text=True)
    with console.db.session() as session:
        assert session.scalars(select(Force)).all() == []


def test_the_same_name_twice_is_refused(admin, console, force):
    response = admin.post_form("/referrals/forces", {"name": "Marrowshire Police Professional Standards"})
    assert response.status_code == 400 and "registered already" in response.get_data(as_text=True)


def test_a_removed_force_is_offered_no_more_but_past_referrals_still_name_it(admin, handler, console, force, spoken_case):
    reference, *_ = spoken_case()
    assert exports(handler, reference, force_id=force).ok
    response = admin.post_form("/referrals/forces", {}, action=f"/referrals/forces/{force}/remove")
    assert response.status_code == 302
    assert 'id="no-forces"' in handler.get(f"/cases/{reference}/referral").get_data(as_text=True)
    assert not exports(handler, reference, force_id=force).ok
    html = handler.get(f"/cases/{reference}").get_data(as_text=True)
    assert texts_of_class(html, "referral-force") == ["Marrowshire Police Professional Standards"]
    again = admin.post_form("/referrals/forces", {}, action=f"/referrals/forces/{force}/remove")
    assert again.status_code == 404


def test_a_handler_cannot_reach_the_forces_page(handler):
    assert handler.get("/referrals/forces").status_code == 403
