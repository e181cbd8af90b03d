from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from storage.cases import UNLOCK_FAILURE_LIMIT, open_case, unlock_case
from storage.models import ReferenceLock, utcnow
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


def test_pin_is_four_digits_stable_and_depends_on_the_secret():
    pin = pin_for("s" * 40, "12345674")
    assert len(pin) == 4 and pin.isdigit()
    assert pin == pin_for("s" * 40, "12345674")
    assert pin_matches("s" * 40, "12345674", pin)
    assert not pin_matches("s" * 40, "12345674", str((int(pin) + 1) % 10000).zfill(4))
    assert any(pin_for(f"{i}" * 40, "12345674") != pin for i in range(10))


@pytest.fixture
def session(hotline):
    with hotline.db.session() as session:
        yield session


def test_unlock_with_the_right_reference_and_pin(session, settings):
    case = open_case(session, anonymous=True)
    session.commit()
    result = unlock_case(session, settings.secret_key, case.reference, pin_for(settings.secret_key, case.reference))
    assert result.case is case and not result.locked


def test_five_failures_lock_a_reference_for_an_hour_even_against_the_right_pin(session, settings):
    case = open_case(session, anonymous=True)
    pin = pin_for(settings.secret_key, case.reference)
    wrong = str((int(pin) + 1) % 10000).zfill(4)
    now = utcnow()
    for attempt in range(UNLOCK_FAILURE_LIMIT):
        result = unlock_case(session, settings.secret_key, case.reference, wrong, now)
        assert result.case is None
    assert result.locked
    assert unlock_case(session, settings.secret_key, case.reference, pin, now + timedelta(minutes=59)).case is None
    assert unlock_case(session, settings.secret_key, case.reference, pin, now + timedelta(minutes=61)).case is case
    assert session.scalar(select(ReferenceLock)) is None  # a success clears the record


def test_a_reference_that_does_not_exist_locks_just_the_same(session, settings):
    reference = CaseReference.generate().digits
    now = utcnow()
    for _ in range(UNLOCK_FAILURE_LIMIT):
        result = unlock_case(session, settings.secret_key, reference, "1234", now)
    assert result.case is None and result.locked
