"""Pressing 3 ("keep it and add more") cannot go on for ever: a call holds a bounded number of takes."""
from __future__ import annotations

from sqlalchemy import func, select

from ivr import prompts
from ivr.flow import MAX_TAKES_PER_CALL
from storage.models import Recording
from tests.support.audio import phone_wav


def _report(twilio):
    caller = twilio.dial()
    for key in "111":  # a new report, anonymous, about bribery
        caller.presses(key)
    return caller


def _takes(running_app) -> int:
    with running_app.extensions["hotline"].db.session() as session:
        return session.scalar(select(func.count()).select_from(Recording))


def test_adding_more_stops_at_the_cap_and_the_report_is_kept(twilio, running_app):
    caller = _report(twilio)
    recorded = 0
    for _ in range(3 * MAX_TAKES_PER_CALL):
        if caller.waiting_for != "recording":
            break
        caller.says(phone_wav(0.3))
        recorded += 1
        caller.presses("3")
    assert recorded == MAX_TAKES_PER_CALL == _takes(running_app)
    assert caller.waiting_for == "keys" and caller.hears(prompts.NOT_AN_OPTION)
    caller.presses("1")
    assert caller.hears("Your case reference is")


def test_recording_again_also_stops_at_the_cap(twilio, running_app):
    caller = _report(twilio)
    for _ in range(3 * MAX_TAKES_PER_CALL):
        if caller.waiting_for != "recording":
            break
        caller.says(phone_wav(0.3))
        caller.presses("2")
    assert _takes(running_app) == MAX_TAKES_PER_CALL
    assert caller.hears(prompts.TAKE_DISCARDED) and caller.hears(prompts.TAKE_LIMIT_REACHED)
    assert caller.hears("Your case reference is")
