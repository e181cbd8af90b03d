"""Nothing the line stores times an anonymous call finer than the hour (or the day), and ids give no order
in time (storage/anonymity.py). Named cases keep their precise times."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from ivr.desk import SqlCallDesk
from ivr.events import RecordingEvent
from storage.anonymity import coarse, keep_times_coarse
from storage.cases import open_case
from storage.db import Database
from storage.models import Call, Case, CaseView, Job, Recording, Role, SealedItem, User, utcnow

UTC = timezone.utc


def test_coarse_rounds_down_to_the_hour_or_to_london_s_day():
    assert coarse(datetime(2026, 7, 1, 14, 37, 12, 5, tzinfo=UTC)) == datetime(2026, 7, 1, 14, tzinfo=UTC)
    # 00:30 on 2 July in London (BST) is 23:30 UTC on 1 July: its day starts at 23:00 UTC on 1 July.
    assert coarse(datetime(2026, 7, 1, 23, 30, tzinfo=UTC), "day") == datetime(2026, 7, 1, 23, tzinfo=UTC)
    assert coarse(datetime(2026, 12, 1, 23, 30, tzinfo=UTC), "day") == datetime(2026, 12, 1, 0, tzinfo=UTC)
    assert coarse(datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "day") == datetime(2026, 10, 24, 23, tzinfo=UTC)  # clocks go back
    with pytest.raises(ValueError):
        coarse(datetime(2026, 7, 1, 14, 37), "hour")  # naive
    with pytest.raises(ValueError):
        coarse(utcnow(), "minute")


def _desk(session, hotline) -> SqlCallDesk:
    return SqlCallDesk(session, hotline.sealer, hotline.settings.secret_key)


def _report(hotline, *, anonymous: bool) -> tuple[str, str]:
    call_sid, sid = "CA" + secrets.token_hex(16), "RE" + secrets.token_hex(16)
    with hotline.db.session() as session:
        desk = _desk(session, hotline)
        desk.start_call(call_sid)
        desk.open_report(call_sid, anonymous=anonymous)
        if not anonymous:
            desk.save_contact_number(call_sid, "+447700900456", confirmed=True)
        desk.set_category(call_sid, "other")
        desk.recording_status(call_sid, RecordingEvent(sid, None, 3, "completed"))
        desk.call_ended(call_sid, "completed")
        session.commit()
    return call_sid, sid


def _fine(moment: datetime) -> bool:
    return (moment.minute, moment.second, moment.microsecond) != (0, 0, 0)


def test_an_anonymous_call_s_rows_are_timed_to_the_hour_and_a_named_case_keeps_its_time(hotline):
    _report(hotline, anonymous=True)
    _report(hotline, anonymous=False)
    with hotline.db.session() as session:
        for case in session.scalars(select(Case)):
            rows = [case] + list(case.recordings) + list(case.items)
            times = [row.created_at for row in rows] + [case.updated_at]
            if case.anonymous:
                assert not any(_fine(moment) for moment in times), times
            else:
                assert _fine(case.created_at)  # (once in a million, a named call comes at hh:00:00.000000)
        for call in session.scalars(select(Call)):
            assert not _fine(call.started_at) and not _fine(call.ended_at)
        for job in session.scalars(select(Job)):
            assert not _fine(job.created_at) and not _fine(job.updated_at)


def test_to_the_day_when_so_configured(settings):
    db = Database(settings.database_url)
    keep_times_coarse(db.sessions, "day")
    with db.session() as session:
        case = open_case(session, anonymous=True)
        session.commit()
        assert case.created_at == coarse(utcnow(), "day")
    db.dispose()


def test_a_case_made_anonymous_afterwards_has_its_earlier_times_rounded(hotline):
    call_sid = "CA" + secrets.token_hex(16)
    with hotline.db.session() as session:
        desk = _desk(session, hotline)
        desk.open_report(call_sid, anonymous=False)
        desk.recording_status(call_sid, RecordingEvent("RE" + secrets.token_hex(16), None, 3, "completed"))
        session.commit()
        case = session.scalar(select(Case))
        assert _fine(case.created_at)
        case.anonymous = True
        session.commit()
        case = session.scalar(select(Case))
        assert case.anonymous and not _fine(case.created_at) and not _fine(case.recordings[0].created_at)


def test_a_new_take_on_an_anonymous_case_is_new_to_handlers_though_its_time_is_rounded(hotline):
    call_sid, _ = _report(hotline, anonymous=True)
    with hotline.db.session() as session:
        user = User(username="h", display_name="H", role=Role.HANDLER)
        session.add(user)
        session.flush()
        case = session.scalar(select(Case))
        # The handler looked after the take came in, in the same hour: the take's rounded time is earlier.
        session.add(CaseView(user_id=user.id, case_id=case.id, last_viewed_at=utcnow()))
        session.commit()
        _desk(session, hotline).recording_status(call_sid, RecordingEvent("RE" + secrets.token_hex(16), None, 3, "completed"))
        session.commit()
        assert session.scalars(select(CaseView)).all() == []  # so the inbox shows it as new again


def test_ids_are_random_so_their_order_says_nothing_of_time(hotline):
    with hotline.db.session() as session:
        cases = [open_case(session, anonymous=n % 2 == 0) for n in range(12)]
        session.commit()
        ids = [case.id for case in cases]
    assert ids != sorted(ids) and ids != sorted(ids, reverse=True)  # 2 in 12! by chance
    assert min(ids) > 2**20 and max(ids) < 2**53  # from the whole range, and exact in JavaScript
    for model in (Call, Recording, SealedItem, Job):
        assert model.__table__.c.id.default.arg.__name__ == "random_id"


def test_the_precision_is_a_setting_of_hour_or_day(settings_env):
    from settings import ConfigError, Settings

    assert Settings.from_env(settings_env).anonymous_time == "hour"
    assert Settings.from_env(dict(settings_env, HOTLINE_ANONYMOUS_TIME="day")).anonymous_time == "day"
    with pytest.raises(ConfigError, match="HOTLINE_ANONYMOUS_TIME"):
        Settings.from_env(dict(settings_env, HOTLINE_ANONYMOUS_TIME="minute"))
