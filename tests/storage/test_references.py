from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from storage.cases import UNLOCK_FAILURE_LIMIT, lock_state, open_case, unlock_case, unlock_reference
from storage.models import Case, ReferenceLock, utcnow
from storage.references import CaseReference, damm_check_digit, pin_for, pin_matches


def test_generated_references_are_eight_digits_with_a_valid_check_digit():
    for _ in range(500):
        reference = CaseReference.generate().digits
        assert len(reference) == 8 and reference.isdigit() and reference[0] != "0"
        assert CaseReference.is_well_formed(reference)


def test_the_check_digit_catches_every_single_digit_error_and_neighbour_swap():
    reference = CaseReference.generate().digits
    for position in range(8):
        for digit in "0123456789":
            if digit != reference[position]:
                typo = reference[:position] + digit + reference[position + 1:]
                assert not CaseReference.is_well_formed(typo)
    for position in range(7):
        swapped = reference[:position] + reference[position + 1] + reference[position] + reference[position + 2:]
        if swapped != reference:
            assert not CaseReference.is_well_formed(swapped)


def test_damm_known_value():
    assert damm_check_digit("572") == "4"  # the worked example of Damm's algorithm


def test_pin_is_six_digits_stable_and_depends_on_the_secret():
    pin = pin_for("s" * 40, "12345674")
    assert len(pin) == 6 and pin.isdigit()
    assert pin == pin_for("s" * 40, "12345674")
    assert pin_matches("s" * 40, "12345674", pin)
    assert not pin_matches("s" * 40, "12345674", _wrong(pin))
    assert any(pin_for(f"{i}" * 40, "12345674") != pin for i in range(10))


def test_a_case_from_before_six_digit_pins_keeps_its_four_digit_pin():
    old = pin_for("s" * 40, "12345674", 4)
    assert len(old) == 4 and old.isdigit()
    assert pin_matches("s" * 40, "12345674", old, 4)
    assert not pin_matches("s" * 40, "12345674", old)  # a 6-digit case refuses the short derivation
    assert not pin_matches("s" * 40, "12345674", pin_for("s" * 40, "12345674"), 4)
    with pytest.raises(ValueError):
        pin_for("s" * 40, "12345674", 5)


def _wrong(pin: str) -> str:
    return str((int(pin) + 1) % 10 ** len(pin)).zfill(len(pin))


@pytest.fixture
def session(hotline):
    with hotline.db.session() as session:
        yield session


def test_unlock_with_the_right_reference_and_pin(session, settings):
    case = open_case(session, anonymous=True)
    session.commit()
    result = unlock_case(session, settings.secret_key, case.reference, pin_for(settings.secret_key, case.reference))
    assert result.case is case and not result.locked


def test_ten_failures_lock_a_reference_until_a_person_unlocks_it(session, settings):
    case = open_case(session, anonymous=True)
    pin = pin_for(settings.secret_key, case.reference)
    now = utcnow()
    for attempt in range(UNLOCK_FAILURE_LIMIT):
        result = unlock_case(session, settings.secret_key, case.reference, _wrong(pin), now + timedelta(hours=attempt))
        assert result.case is None
    assert result.locked and lock_state(session, case.reference).locked
    for later in (timedelta(hours=61), timedelta(days=400)):
        assert unlock_case(session, settings.secret_key, case.reference, pin, now + later).case is None
    assert unlock_reference(session, case.reference) == UNLOCK_FAILURE_LIMIT + 2  # the right PIN twice too
    session.commit()
    assert unlock_case(session, settings.secret_key, case.reference, pin).case is case
    assert session.scalar(select(ReferenceLock)) is None


def test_the_right_pin_does_not_wipe_earlier_failures(session, settings):
    case = open_case(session, anonymous=True)
    pin = pin_for(settings.secret_key, case.reference)
    for _ in range(3):
        unlock_case(session, settings.secret_key, case.reference, _wrong(pin))
    assert unlock_case(session, settings.secret_key, case.reference, pin).case is case
    state = lock_state(session, case.reference)
    assert state.failures == 3 and not state.locked
    assert sum(count for _, count in state.hours) == 3
    assert all(hour.minute == hour.second == hour.microsecond == 0 for hour, _ in state.hours)  # the hour only


def test_a_reference_that_does_not_exist_locks_just_the_same(session, settings):
    reference = CaseReference.generate().digits
    now = utcnow()
    for _ in range(UNLOCK_FAILURE_LIMIT):
        result = unlock_case(session, settings.secret_key, reference, "123456", now)
    assert result.case is None and result.locked


def test_a_case_opened_before_six_digit_pins_unlocks_with_its_four_digit_pin(session, settings):
    case = open_case(session, anonymous=True)
    case.pin_length = 4  # as migration 0004 leaves the cases already there
    session.commit()
    old_pin = pin_for(settings.secret_key, case.reference, 4)
    assert unlock_case(session, settings.secret_key, case.reference, pin_for(settings.secret_key, case.reference)).case is None
    assert unlock_case(session, settings.secret_key, case.reference, old_pin).case is case


def test_new_cases_get_six_digit_pins(session, settings):
    case = open_case(session, anonymous=False)
    session.commit()
    assert session.scalar(select(Case.pin_length).where(Case.id == case.id)) == 6


def test_a_new_case_does_not_inherit_failures_keyed_in_before_it_existed(session, settings, monkeypatch):
    reference = CaseReference.generate().digits
    for _ in range(UNLOCK_FAILURE_LIMIT):
        unlock_case(session, settings.secret_key, reference, "123456")
    monkeypatch.setattr(CaseReference, "generate", classmethod(lambda cls: cls(reference)))
    case = open_case(session, anonymous=True)
    session.commit()
    assert case.reference == reference and lock_state(session, reference).failures == 0
    assert unlock_case(session, settings.secret_key, reference, pin_for(settings.secret_key, reference)).case is case


def test_a_reference_already_in_use_is_skipped_and_keeps_its_failures(session, settings, monkeypatch):
    taken = open_case(session, anonymous=True)
    session.commit()
    for _ in range(3):
        unlock_case(session, settings.secret_key, taken.reference, "123456")
    fresh = CaseReference.generate().digits
    draws = iter([taken.reference, fresh])
    monkeypatch.setattr(CaseReference, "generate", classmethod(lambda cls: cls(next(draws))))
    case = open_case(session, anonymous=False)
    session.commit()  # the collision ended nothing: on PostgreSQL a failed INSERT would abort the transaction
    assert case.reference == fresh and case.id != taken.id
    assert lock_state(session, taken.reference).failures == 3  # not forgotten: they were against a real case
    assert session.scalar(select(func.count()).select_from(Case)) == 2
