"""A handler's first day, in headless Chromium: invited by an admin, enrolled, working a real report.

The report is a simulated call to the line with a real person's voice on it, transcribed by the real
model: "and mister john dashwood had then leisure to consider how much there might be prudently in
his power to do for them", which the pinned model hears with two mistakes ("amateur" for "and mister",
"our" for "power") — so the handler has something real to correct.
"""
from __future__ import annotations

import difflib

import pytest

from tests.browser.support.pages import wait_for

pytestmark = pytest.mark.slow

SEEK_TOLERANCE_SECONDS = 0.3


def misheard_word(heard: list[str], spoken: list[str]) -> tuple[int, str]:
    """The position of a word the machine got wrong, one for one, and the word really said there."""
    matcher = difflib.SequenceMatcher(a=[w.lower() for w in heard], b=spoken, autojunk=False)
    for tag, heard_from, heard_to, spoken_from, spoken_to in matcher.get_opcodes():
        if tag == "replace" and heard_to - heard_from == 1 and spoken_to - spoken_from == 1:
            return heard_from, spoken[spoken_from]
    raise AssertionError(f"the model heard every word right ({' '.join(heard)!r}): nothing to correct")


def a_word_said_and_heard(heard: list[str], spoken: list[str]) -> str:
    """The longest word that the caller said and the machine heard: what a handler would search for."""
    both = {w.lower() for w in heard} & set(spoken)
    assert both, "the machine heard none of the caller's words"
    return max(sorted(both), key=len)


def test_an_invited_handler_enrols_and_works_a_case_a_caller_reported(people, at_console, spoken_report, screenshots):
    # An admin invites Hana; she opens the one-time link, chooses a password and sets up TOTP.
    admin = at_console(people.admin("ada"))
    admin.signs_in()
    link = admin.invites("hana", role="handler", name="Hana Novak")

    hana = at_console("hana")
    hana.enrols(link, password="plum-kettle-orbit-73")
    assert spoken_report.reference in hana.inbox_references()
    screenshots.take(hana, "inbox")

    # She opens the case the call created and plays the take: the highlight follows the voice.
    case = hana.opens_case(spoken_report.reference)
    take = case.take(1)
    assert take.recording_id == spoken_report.recording_id
    heard = take.word_texts()
    assert len(heard) >= 10
    take.plays()
    wait_for(hana.driver, "a word to be highlighted", lambda d: take.highlighted_start() is not None)
    first_start = take.highlighted_start()
    wait_for(hana.driver, "the highlight to move on through the words, 1.5 s and more into the take",
             lambda d: (take.highlighted_start() or 0) >= first_start + 1.5)
    take.scrolls_into_view()
    screenshots.take(hana, "case")
    take.pauses()

    # A click on a word puts the audio at that word.
    target = take.words()[len(heard) * 2 // 3]
    start = take.clicks_word(target)
    assert abs(take.current_time() - start) <= SEEK_TOLERANCE_SECONDS
    assert take.highlighted_start() == start

    # The player's keys: j back 5 seconds, n to the next word the machine was unsure of, k play and pause.
    take.presses("j")
    assert abs(take.current_time() - max(0.0, start - 5)) <= SEEK_TOLERANCE_SECONDS
    take.presses("n")
    unsure = take.highlighted_word()
    assert unsure is not None and "low" in unsure.get_attribute("class").split()
    assert abs(take.current_time() - float(unsure.get_attribute("data-start"))) <= SEEK_TOLERANCE_SECONDS
    take.presses("k")
    wait_for(hana.driver, "k to play", lambda d: take.is_playing())
    take.presses("k")
    wait_for(hana.driver, "k to pause", lambda d: not take.is_playing())

    # She corrects a word the machine misheard; the correction is version 2 and keeps the word's timing.
    position, right_word = misheard_word(heard, spoken_report.spoken_words)
    misheard_start = take.words()[position].get_attribute("data-start")
    take.corrects(take.words()[position], right_word)
    wait_for(hana.driver, "the transcript to show version 2", lambda d: "Version 2" in take.version())
    corrected = take.words()[position]
    assert (corrected.text.strip(), corrected.get_attribute("data-start")) == (right_word, misheard_start)

    # A note, then a status: both on the case's timeline.
    case.adds_note("Caller names an officer; check who was on duty that week.")
    case.sets_status("In review")
    assert "In review" in case.timeline()

    # And the case is found again by something the caller said.
    word = a_word_said_and_heard(heard, spoken_report.spoken_words)
    assert hana.searches_for(word) == [spoken_report.reference]
