"""Search: words spoken in takes (the newest version of each transcript) and written in notes, from an
index held in memory only; the words asked for never reach a URL or the audit log."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from console.search import EXTENSION_KEY, SearchIndex, words_of
from storage.models import AuditAction, AuditEntry, Recording
from tests.console.cases.helpers import Take, form_post, table_rows, texts_of_class


def searches(person, q: str):
    return form_post(person, "/search", "/search", {"q": q})


def found(person, q: str) -> list[tuple[str, str]]:
    response = searches(person, q)
    assert response.status_code == 200
    return [(row["_attrs"]["data-reference"], row["where"])
            for row in table_rows(response.get_data(as_text=True), "search-result")]


def day(n: int) -> datetime:
    return datetime(2026, 11, n, 12, tzinfo=timezone.utc)


def test_search_finds_a_spoken_word_and_a_note_newest_cases_first(handler, cases):
    older = cases.case(received=day(1), takes=[Take("he showed me a knife in the car park")])
    newer = cases.case(received=day(2), takes=[Take("nothing here"), Take("then the knife again")])
    unrelated = cases.case(received=day(3), takes=[Take("a different report entirely")])
    form_post(handler, f"/cases/{older}", f"/cases/{older}/notes", {"text": "Ask about the KNIFE, and the car."})

    assert found(handler, "knife") == [(newer, "take 2 transcript"), (older, "take 1 transcript"), (older, "note")]
    assert found(handler, "Knife!") == found(handler, "knife")
    assert found(handler, "different") == [(unrelated, "take 1 transcript")]
    response = searches(handler, "car park")
    [row] = table_rows(response.get_data(as_text=True), "search-result")
    assert (row["_attrs"]["data-reference"], row["where"]) == (older, "take 1 transcript")
    assert texts_of_class(response.get_data(as_text=True), "snippet")[0] == "he showed me a knife in the car park"
    assert f'href="/cases/{older}"' in response.get_data(as_text=True)


def test_every_word_must_match_and_the_last_may_be_a_prefix(handler, cases):
    both = cases.case(received=day(1), takes=[Take("the officer took my phone")])
    one = cases.case(received=day(2), takes=[Take("the officer was polite")])

    assert [ref for ref, _ in found(handler, "officer phone")] == [both]
    assert [ref for ref, _ in found(handler, "officer pho")] == [both]
    assert [ref for ref, _ in found(handler, "offi")] == [one, both]
    assert found(handler, "pho officer") == []  # only the last word is a prefix
    assert "No transcript or note has all those words." in searches(handler, "zeppelin").get_data(as_text=True)


def test_the_newest_corrected_version_is_what_is_searched(handler, colleague, cases):
    reference = cases.case(takes=[Take("he said his name was constable smiff")])
    [take] = cases.takes_of(reference)
    assert [ref for ref, _ in found(handler, "smiff")] == [reference]  # the index is built now

    cases.correct(take, "he said his name was constable smith", author_id=colleague.user_id)
    assert found(handler, "smiff") == []
    assert found(handler, "smith") == [(reference, "take 1 transcript")]
    cases.correct(take, "he said his name was constable smyth", author_id=colleague.user_id)
    assert found(handler, "smith") == [] and [ref for ref, _ in found(handler, "smyth")] == [reference]


def test_a_discarded_take_drops_out_of_the_index(handler, cases, console):
    reference = cases.case(takes=[Take("a mistaken start"), Take("the real report")])
    assert [ref for ref, _ in found(handler, "mistaken")] == [reference]
    first = cases.takes_of(reference)[0]
    with console.db.session() as session:
        session.get(Recording, first).decision = "discard"
        session.commit()
    assert found(handler, "mistaken") == []
    assert found(handler, "real") == [(reference, "take 1 transcript")]  # numbered among the kept takes


def test_search_words_reach_no_url_and_no_audit_entry(handler, cases, console):
    reference = cases.case(takes=[Take("the word is periwinkle")])
    assert found(handler, "periwinkle") == [(reference, "take 1 transcript")]

    assert handler.get("/search?q=periwinkle").get_data(as_text=True).count("periwinkle") == 0  # GET runs nothing
    with console.db.session() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == AuditAction.SEARCHED)).all()
        everything = " ".join(f"{e.detail} {e.case_reference}" for e in session.scalars(select(AuditEntry)))
    assert [json.loads(entry.detail) for entry in entries] == [{"results": 1}]
    assert "periwinkle" not in everything
    assert 'method="post"' in handler.get("/search").get_data(as_text=True)


def test_bad_search_input_gets_a_message(handler, cases):
    cases.case(takes=[Take("some words")])
    for q, message in [("", "Type one or more words to search for."),
                       ("?!… --", "Type one or more words (letters or digits) to search for."),
                       ("w" * 201, "Search for at most 200 characters."),
                       (" ".join(["word"] * 13), "Search for at most 12 words.")]:
        response = searches(handler, q)
        assert response.status_code == 400
        assert message in texts_of_class(response.get_data(as_text=True), "flash")


def test_words_are_folded_and_stripped_of_punctuation():
    assert words_of("Don't SHOUT, P.C. Ñandú — 999!") == ["dont", "shout", "p", "c", "ñandú", "999"]


def test_the_index_is_wiped_after_the_idle_time(console_app, handler, cases):
    cases.case(takes=[Take("lantern")])
    found(handler, "lantern")
    index: SearchIndex = console_app.extensions[EXTENSION_KEY]
    assert index.is_built
    index.idle_seconds = 0.05
    found(handler, "lantern")
    deadline = time.monotonic() + 5
    while index.is_built and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not index.is_built
    assert [where for _, where in found(handler, "lantern")] == ["take 1 transcript"]  # rebuilt on demand


def test_searches_from_several_threads_at_once_agree(console, cases, private_key):
    from console.keys import Opener

    for n in range(12):
        cases.case(received=day(1) + timedelta(hours=n), takes=[Take(f"common word{n}")])
    index = SearchIndex(idle_seconds=60)
    opener = Opener(private_key, console.blobs, console.periods)
    totals, errors = [], []

    def search():
        try:
            with console.db.session() as session:
                totals.append(index.search(session, opener, "common").total)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=search) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and totals == [12] * 6


def test_the_index_reads_the_same_version_as_the_transcripts_module(console, cases, private_key):
    """console.search picks each take's newest version in one query for all takes; it must agree with
    console.transcripts.newest_transcript, which everything else reads."""
    from console.keys import Opener
    from console.search import list_sources, words_of_transcript
    from console.transcripts import newest_transcript

    reference = cases.case(takes=[Take("one two"), Take("three four"), Take(None)])
    first, second, untranscribed = cases.takes_of(reference)
    cases.correct(first, "one too")
    cases.correct(first, "won too")
    opener = Opener(private_key, console.blobs, console.periods)
    with console.db.session() as session:
        by_take = {source.take_number: source for source in list_sources(session).values()}
        assert sorted(by_take) == [1, 2]  # the take without a transcript has nothing to search
        for number, recording_id in ((1, first), (2, second)):
            from storage.models import SealedItem

            item = session.get(SealedItem, by_take[number].item_id)
            _, newest = newest_transcript(session, opener, session.get(Recording, recording_id))
            assert words_of_transcript(opener.open(session, item, by_take[number].owner)) == " ".join(w.text for w in newest.words)
    assert words_of_transcript(b'{"text": "only text", "words": []}') == "only text"
