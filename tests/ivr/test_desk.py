"""The call desk's memory of a report: a caller's choice of anonymity can only become more private."""
from __future__ import annotations

import secrets

from sqlalchemy import select

from ivr.desk import SqlCallDesk
from storage.models import Call, SealedItem


def _desk(session, hotline) -> SqlCallDesk:
    return SqlCallDesk(session, hotline.sealer, hotline.settings.pin_key)


def test_an_anonymous_report_stays_anonymous_when_the_choice_comes_again(hotline):
    call_sid = "CA" + secrets.token_hex(16)
    with hotline.db.session() as session:
        desk = _desk(session, hotline)
        desk.open_report(call_sid, anonymous=True)
        desk.open_report(call_sid, anonymous=False)  # a retried webhook, or the caller went back
        session.commit()
        call = session.scalar(select(Call))
        assert call.case.anonymous is True


def test_a_named_report_made_anonymous_keeps_no_contact_number(hotline):
    call_sid = "CA" + secrets.token_hex(16)
    with hotline.db.session() as session:
        desk = _desk(session, hotline)
        desk.open_report(call_sid, anonymous=False)
        desk.save_contact_number(call_sid, "+447700900222", confirmed=True)
        desk.open_report(call_sid, anonymous=True)
        session.commit()
        call = session.scalar(select(Call))
        assert call.case.anonymous is True
        assert session.scalars(select(SealedItem).where(SealedItem.kind == "contact")).all() == []
