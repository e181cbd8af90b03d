"""The reference lock-out under real concurrency (threads, each with its own connection) on SQLite and
PostgreSQL, and against someone who holds a reference and guesses its PIN slowly, over weeks."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from storage.cases import open_case, unlock_case
from storage.db import Database
from storage.migrate import upgrade
from storage.models import ReferenceLock, utcnow
from storage.references import pin_for

SECRET = "s" * 40
LIMIT = 10  # failures in all, after which only a person unlocks the reference


@pytest.fixture
def db(database_url):
    upgrade(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


def _new_case(db) -> tuple[str, str]:
    with db.session() as session:
        case = open_case(session, anonymous=True)
        session.commit()
        return case.reference, pin_for(SECRET, case.reference)


def _wrong(pin: str) -> str:
    return str((int(pin) + 1) % 10 ** len(pin)).zfill(len(pin))


def _failures(db, reference: str) -> int:
    with db.session() as session:
        return session.scalar(select(ReferenceLock.failures).where(ReferenceLock.reference == reference)) or 0


def _one_attempt(db, reference: str, pin: str, now=None) -> str:
    with db.session() as session:
        result = unlock_case(session, SECRET, reference, pin, now)
        session.commit()
        return "unlocked" if result.case is not None else "refused"


def _all_at_once(db, reference: str, pins: list[str]) -> list[str]:
    """Each PIN keyed in on its own call at the same moment: one thread and one connection each. Every
    attempt holds its transaction open until all have read (as webhooks arriving together do), so a
    read-then-write count would lose updates, and colliding first inserts would show."""
    started, checked = threading.Barrier(len(pins)), threading.Barrier(len(pins))
    outcomes: list[str] = [""] * len(pins)

    def attempt(index: int, pin: str) -> None:
        try:
            with db.session() as session:
                started.wait(timeout=10)
                result = unlock_case(session, SECRET, reference, pin)
                try:
                    checked.wait(timeout=3)  # a row lock can keep the others from getting here: go on
                except threading.BrokenBarrierError:
                    pass
                session.commit()
                outcomes[index] = "unlocked" if result.case is not None else "refused"
        except Exception as error:  # what a webhook would have turned into "something went wrong"
            outcomes[index] = type(error).__name__

    threads = [threading.Thread(target=attempt, args=(i, pin)) for i, pin in enumerate(pins)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_interleaved_wrong_pins_are_each_counted_and_then_the_right_pin_is_refused(db):
    """On SQLite `with_for_update` did nothing: 1 failure then 6 interleaved ones left the counter at 2."""
    reference, pin = _new_case(db)
    assert _one_attempt(db, reference, _wrong(pin)) == "refused"
    outcomes = _all_at_once(db, reference, [_wrong(pin)] * (LIMIT + 1))
    assert outcomes == ["refused"] * (LIMIT + 1)
    assert _failures(db, reference) == LIMIT + 2
    assert _one_attempt(db, reference, pin) == "refused"


def test_first_failures_at_once_all_count_and_nobody_hears_an_error(db):
    """On PostgreSQL the first failures collided on the insert: the losers got an IntegrityError (the
    caller heard "something went wrong") and were not counted."""
    reference, pin = _new_case(db)
    outcomes = _all_at_once(db, reference, [_wrong(pin)] * 5 + [pin])
    assert outcomes == ["refused"] * 5 + ["unlocked"]  # fewer than 10 failures before it: the owner gets in
    assert _failures(db, reference) == 5


def test_a_burst_of_wrong_pins_locks_the_reference(db):
    reference, pin = _new_case(db)
    outcomes = _all_at_once(db, reference, [_wrong(pin)] * (LIMIT + 2))
    assert outcomes == ["refused"] * (LIMIT + 2)
    assert _failures(db, reference) == LIMIT + 2
    assert _one_attempt(db, reference, pin) == "refused"


def test_guessing_slowly_over_weeks_still_locks_the_reference(db):
    """5 tries an hour, reset every hour, let a holder of the reference guess for ever. Now 10 failures in
    all lock it until a person unlocks it, however far apart they are."""
    reference, pin = _new_case(db)
    start = utcnow()
    for day in range(LIMIT // 2):
        for hour in (0, 3):
            assert _one_attempt(db, reference, _wrong(pin), start + timedelta(days=day, hours=hour)) == "refused"
    assert _one_attempt(db, reference, pin, start + timedelta(days=30)) == "refused"
    assert _one_attempt(db, reference, pin, start + timedelta(days=300)) == "refused"


def test_nine_failures_spread_out_still_let_the_owner_in(db):
    reference, pin = _new_case(db)
    start = utcnow()
    for attempt in range(LIMIT - 1):
        _one_attempt(db, reference, _wrong(pin), start + timedelta(hours=attempt * 5))
    assert _one_attempt(db, reference, pin, start + timedelta(days=3)) == "unlocked"


def test_cases_from_before_the_migration_keep_their_four_digit_pins(database_url):
    from sqlalchemy import text

    upgrade(database_url, "0003")
    database = Database(database_url)
    try:
        with database.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO cases (reference, anonymous, status, urgent, created_at, updated_at) "
                "VALUES ('12345671', :yes, 'new', :no, :now, :now)"), {"yes": True, "no": False, "now": utcnow()})
        upgrade(database_url)
        old_pin = pin_for(SECRET, "12345671", 4)
        assert _one_attempt(database, "12345671", pin_for(SECRET, "12345671")) == "refused"
        assert _one_attempt(database, "12345671", old_pin) == "unlocked"
        reference, _ = _new_case(database)
        from storage.models import Case

        with database.session() as session:
            lengths = dict(session.execute(select(Case.reference, Case.pin_length)).all())
        assert lengths == {"12345671": 4, reference: 6}
    finally:
        database.dispose()


def test_failures_across_all_references_raise_one_alert_an_hour(db, caplog):
    from storage.cases import UNLOCK_ALERT_THRESHOLD, failures_this_hour

    caplog.set_level("WARNING", logger="hotline.storage.lockout")
    now = utcnow().replace(minute=10)
    references = [_new_case(db)[0] for _ in range(3)]
    for attempt in range(UNLOCK_ALERT_THRESHOLD + 5):
        _one_attempt(db, references[attempt % 3], "000000", now + timedelta(seconds=attempt))
    alerts = [record for record in caplog.records if "ALERT" in record.getMessage()]
    assert len(alerts) == 1
    message = alerts[0].getMessage()
    assert not any(reference in message for reference in references)
    with db.session() as session:
        assert failures_this_hour(session, now) == UNLOCK_ALERT_THRESHOLD + 5
        assert failures_this_hour(session, now + timedelta(hours=1)) == 0
    _one_attempt(db, references[0], "000000", now + timedelta(hours=1))
    assert len([record for record in caplog.records if "ALERT" in record.getMessage()]) == 1
