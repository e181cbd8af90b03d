"""Search over transcripts and notes, from an index that exists only in this console process's memory.

Why in memory, and not a blind index in the database under a console-only key:

- A blind index (an HMAC of each word, under a key only the console holds) still leaks at rest. Equal
  words give equal tokens, so a copy of the database shows which reports share words, how often each
  word occurs, and how long each report is; word frequencies are enough to guess common words, and
  then which cases mention the same officer, station or street. Those are exactly the links the people
  we defend against (THREAT-MODEL.md, 1 and 3) want. It would also put a long-lived key on the console
  host that opens nothing but answers "does case X say word W?" for anyone who steals it.
- An index rebuilt in memory leaks nothing at rest. It is built lazily, on the first search, with the
  signed-in handler's own opener (so nothing can be indexed without an unlocked session), and refreshed
  incrementally on every search: one aggregate query tells whether anything changed; if so, sealed
  items added since (new transcripts, corrected versions, notes) are opened and indexed, and items that
  went away (a discarded take, a superseded transcript version) are dropped. It is never written to disk, and it is wiped after `idle_minutes` without a search, so a
  console nobody is using holds no plaintext. Its cost is the first build (every kept take's newest
  transcript opened once: seconds for 10,000 cases, see benchmarks/console.py), paid once per process.

Residual risk, said plainly: while the index is held, the process's memory holds plaintext, as it does
for any page being rendered; run the console host without swap (or with encrypted swap) and without
core dumps.

Words are case-folded and stripped of punctuation; every word of a query must occur in the same
transcript or note, and the last word also matches as a prefix ("kni" finds "knife") so results can
narrow as a handler types. Results: newest cases first.
"""
from __future__ import annotations

import bisect
import dataclasses
import json
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, joinedload

from storage.blobs import BlobMissing, BlobStore, DatabaseBlobStore
from storage.cases import event_owner, take_owner, version_owner
from storage.crypto import SealError
from storage.models import TAKE_ORDER, BlobRow, Case, CaseEvent, CaseEventKind, Recording, SealedItem, TranscriptVersion

log = logging.getLogger("hotline.console.search")

EXTENSION_KEY = "case_search"
_WORD = re.compile(r"[^\W_]+")
_APOSTROPHES = str.maketrans("", "", "'’‘`")
SNIPPET_WORDS_BEFORE, SNIPPET_WORDS_AFTER = 8, 14
DEFAULT_LIMIT = 100


def words_of(text: str) -> list[str]:
    """Lower-cased words, punctuation gone ("Don't," -> "dont"): the same for what is indexed and asked."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    return _WORD.findall(folded)


SEARCHED_KINDS = ("transcript", "transcript-version", "note")


@dataclass(frozen=True)
class Source:
    """Where a searchable text lives: plain metadata, read without opening anything."""

    item_id: int
    blob_key: str  # random per seal: an item id SQLite reuses after a delete is not mistaken for the old item
    case_id: int
    case_created_at: datetime
    take_number: int | None  # None for a note
    written_at: datetime
    owner: str  # what points at the item, which its seal must name (storage.cases.take_owner etc.)

    @property
    def where(self) -> str:
        return f"take {self.take_number} transcript" if self.take_number is not None else "note"

    @property
    def sort_key(self) -> tuple:
        # Newest cases first; within a case, takes in order, then notes in order.
        return (-self.case_created_at.timestamp(), -self.case_id, self.take_number is None,
                self.take_number or 0, self.written_at.timestamp(), self.item_id)


@dataclass
class _Document:
    source: Source
    text: str
    tokens: frozenset[str]


@dataclass(frozen=True)
class SearchResult:
    reference: str
    case_created_at: datetime
    anonymous: bool
    where: str
    before: str  # the snippet: words before the first match, the match, words after
    match: str
    after: str


@dataclass(frozen=True)
class SearchOutcome:
    results: list[SearchResult]
    total: int
    documents: int  # how many transcripts and notes the index holds


def fingerprint(session: Session) -> tuple:
    """Changes whenever the set of searchable items may have: one cheap aggregate query, so a search
    when nothing changed lists nothing."""
    items = session.execute(
        select(func.count(SealedItem.id), func.max(SealedItem.id), func.max(SealedItem.created_at))
        .where(SealedItem.kind.in_(SEARCHED_KINDS))
    ).one()
    takes = session.execute(
        select(func.count(Recording.id), func.count(Recording.transcript_item_id)).where(Recording.decision == "keep")
    ).one()
    versions = session.scalar(select(func.count(TranscriptVersion.id)))
    return (*items, *takes, versions)


def list_sources(session: Session) -> dict[int, Source]:
    """Every searchable sealed item now: the newest transcript version of each kept take, and every note.

    "Newest" follows console.transcripts.newest_transcript (owner C's, the one rule for everyone): the
    highest TranscriptVersion.version, else the machine's Recording.transcript_item. That function asks
    per take; the index needs all 10,000 at once, so this is the same rule as one query, and
    tests/console/cases/test_search.py holds the two to the same answer.
    """
    newest = (select(TranscriptVersion.recording_id, func.max(TranscriptVersion.version).label("version"))
              .group_by(TranscriptVersion.recording_id).subquery())
    corrected = (select(TranscriptVersion.recording_id, TranscriptVersion.item_id, TranscriptVersion.created_at,
                        TranscriptVersion.version)
                 .join(newest, and_(newest.c.recording_id == TranscriptVersion.recording_id,
                                    newest.c.version == TranscriptVersion.version))
                 .subquery())
    number = func.row_number().over(partition_by=Recording.case_id, order_by=TAKE_ORDER)  # as on the case page
    takes = (select(Recording.case_id, func.coalesce(corrected.c.item_id, Recording.transcript_item_id).label("item_id"),
                    func.coalesce(corrected.c.created_at, Recording.created_at).label("written_at"),
                    number.label("number"), Recording.id.label("recording_id"), corrected.c.version)
             .outerjoin(corrected, corrected.c.recording_id == Recording.id)
             .where(Recording.decision == "keep")
             .subquery())
    sources: dict[int, Source] = {}
    for case_id, item_id, written_at, take_number, recording_id, version, blob_key, created_at in session.execute(
        select(takes.c.case_id, takes.c.item_id, takes.c.written_at, takes.c.number, takes.c.recording_id,
               takes.c.version, SealedItem.blob_key, Case.created_at)
        .join(SealedItem, SealedItem.id == takes.c.item_id)  # takes without a transcript drop out here
        .join(Case, Case.id == takes.c.case_id)
    ):
        owner = take_owner(recording_id) if version is None else version_owner(recording_id, version)
        sources[item_id] = Source(item_id, blob_key, case_id, created_at, int(take_number), _aware(written_at), owner)
    for item_id, case_id, written_at, blob_key, created_at, event_id in session.execute(
        select(CaseEvent.item_id, CaseEvent.case_id, CaseEvent.created_at, SealedItem.blob_key, Case.created_at,
               CaseEvent.id)
        .join(SealedItem, SealedItem.id == CaseEvent.item_id)
        .join(Case, Case.id == CaseEvent.case_id)
        .where(CaseEvent.kind == CaseEventKind.NOTE)
    ):
        sources[item_id] = Source(item_id, blob_key, case_id, created_at, None, written_at, event_owner(event_id))
    return sources


def _aware(value: datetime | str) -> datetime:
    # coalesce() loses the column's type on SQLite, so the UTC timestamp may come back as text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class _PrefetchedBlobs:
    """The blob store, with one query fetching a batch of sealed blobs (the first build opens
    thousands; one query each would be most of its time). Opening is still Opener.open's, in keys.py."""

    def __init__(self, inner: BlobStore, session: Session, keys: list[str]):
        self.inner = inner
        self.fetched: dict[str, bytes] = {}
        if isinstance(inner, DatabaseBlobStore):
            self.fetched = dict(session.execute(select(BlobRow.key, BlobRow.data).where(BlobRow.key.in_(keys))).all())

    def get(self, session: Session, key: str) -> bytes:
        data = self.fetched.pop(key, None)
        return data if data is not None else self.inner.get(session, key)

    def put(self, session: Session, key: str, data: bytes) -> None:  # pragma: no cover - never written through
        raise NotImplementedError

    def delete(self, session: Session, key: str) -> None:  # pragma: no cover
        raise NotImplementedError


def _with_prefetched_blobs(opener, session: Session, keys: list[str]):
    if dataclasses.is_dataclass(opener) and hasattr(opener, "blobs"):
        return dataclasses.replace(opener, blobs=_PrefetchedBlobs(opener.blobs, session, keys))
    return opener


def words_of_transcript(data: bytes) -> str:
    """The words of a sealed transcript (the shared JSON form of transcription.recognizer.Transcript):
    the words, which are what the player shows and corrections change; the text if there are none."""
    raw = json.loads(data)
    words = raw.get("words") or []
    return " ".join(str(word["text"]) for word in words) if words else str(raw.get("text", ""))


class SearchIndex:
    """An inverted index (word -> items), guarded by one lock: searches from several request threads
    take turns, and a refresh is never seen half-done."""

    def __init__(self, idle_seconds: float):
        self.idle_seconds = idle_seconds
        self._lock = threading.RLock()
        self._docs: dict[int, _Document] = {}
        self._postings: dict[str, set[int]] = {}
        self._vocabulary: list[str] | None = []  # sorted, for prefix matches; None when stale
        self._unopenable: set[str] = set()  # damaged items' blob keys: logged once, not retried every search
        self._fingerprint: tuple | None = None
        self._wipe_timer: threading.Timer | None = None

    # --- keeping it current ---------------------------------------------------------------------

    @property
    def is_built(self) -> bool:
        return self._fingerprint is not None

    @property
    def documents(self) -> int:
        return len(self._docs)

    @property
    def words(self) -> int:
        return len(self._postings)

    def refresh(self, session: Session, opener) -> None:
        with self._lock:
            now = fingerprint(session)
            if now == self._fingerprint:
                return
            sources = list_sources(session)
            for item_id, document in list(self._docs.items()):
                source = sources.get(item_id)
                if source is None or source.blob_key != document.source.blob_key:
                    self._drop(item_id)
                else:
                    document.source = source  # a take's number can change (a discarded take); its text cannot
            missing = [source for item_id, source in sources.items()
                       if item_id not in self._docs and source.blob_key not in self._unopenable]
            for chunk in _chunks(missing, 500):
                self._add_all(session, opener, chunk)
            self._fingerprint = now

    def _add_all(self, session: Session, opener, sources: list[Source]) -> None:
        items = {item.id: item for item in session.scalars(  # with its case: opening checks the reference
            select(SealedItem).where(SealedItem.id.in_([source.item_id for source in sources]))
            .options(joinedload(SealedItem.case)))}
        batch_opener = _with_prefetched_blobs(opener, session, [item.blob_key for item in items.values()])
        for source in sources:
            item = items.get(source.item_id)
            try:
                if item is None:
                    raise BlobMissing(source.blob_key)
                plaintext = batch_opener.open(session, item, source.owner)
                text = plaintext.decode("utf-8") if source.take_number is None else words_of_transcript(plaintext)
            except (SealError, BlobMissing, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
                log.warning("search: sealed item %s did not open (%s); left out", source.item_id, type(error).__name__)
                self._unopenable.add(source.blob_key)
                continue
            self._add(source, text)

    def _add(self, source: Source, text: str) -> None:
        tokens = frozenset(words_of(text))
        self._docs[source.item_id] = _Document(source, text, tokens)
        for token in tokens:
            posting = self._postings.get(token)
            if posting is None:
                self._postings[token] = {source.item_id}
                self._vocabulary = None
            else:
                posting.add(source.item_id)

    def _drop(self, item_id: int) -> None:
        document = self._docs.pop(item_id)
        for token in document.tokens:
            posting = self._postings.get(token)
            if posting is not None:
                posting.discard(item_id)
                if not posting:
                    del self._postings[token]
                    self._vocabulary = None

    def clear(self) -> None:
        """Forget every word (after the idle time, or when the console stops)."""
        with self._lock:
            self._docs.clear()
            self._postings.clear()
            self._vocabulary = []
            self._unopenable.clear()
            self._fingerprint = None

    def _touch(self) -> None:
        if self._wipe_timer is not None:
            self._wipe_timer.cancel()
        self._wipe_timer = threading.Timer(self.idle_seconds, self.clear)
        self._wipe_timer.daemon = True
        self._wipe_timer.start()

    # --- asking it ------------------------------------------------------------------------------

    def search(self, session: Session, opener, query: str, limit: int = DEFAULT_LIMIT) -> SearchOutcome:
        words = words_of(query)
        with self._lock:
            self.refresh(session, opener)
            self._touch()
            matched = self._matching(words)
            ordered = sorted(matched, key=lambda item_id: self._docs[item_id].source.sort_key)
            shown = [self._docs[item_id] for item_id in ordered[:limit]]
            documents = len(self._docs)
        # The case's reference and anonymity are read fresh, not from the index: a case made more
        # private since (named -> anonymous) must show only the hour from now on.
        cases = {case_id: (reference, created_at, anonymous) for case_id, reference, created_at, anonymous in
                 session.execute(select(Case.id, Case.reference, Case.created_at, Case.anonymous)
                                 .where(Case.id.in_({document.source.case_id for document in shown})))}
        results = [self._result(document, words, *cases[document.source.case_id])
                   for document in shown if document.source.case_id in cases]
        return SearchOutcome(results, len(ordered), documents)

    def _matching(self, words: list[str]) -> set[int]:
        if not words:
            return set()
        postings: list[set[int]] = [self._postings.get(word, set()) for word in words[:-1]]
        postings.append(set().union(*(self._postings[token] for token in self._completions(words[-1]))))
        postings.sort(key=len)
        matched = set(postings[0])
        for posting in postings[1:]:
            matched &= posting
            if not matched:
                break
        return matched

    def _completions(self, prefix: str) -> Iterable[str]:
        if self._vocabulary is None:
            self._vocabulary = sorted(self._postings)
        start = bisect.bisect_left(self._vocabulary, prefix)
        for token in self._vocabulary[start:]:
            if not token.startswith(prefix):
                break
            yield token

    @staticmethod
    def _result(document: _Document, words: list[str], reference: str, created_at: datetime,
                anonymous: bool) -> SearchResult:
        spoken = document.text.split()
        exact, prefix = set(words[:-1]), words[-1]

        def hits(display_word: str) -> bool:
            return any(token in exact or token.startswith(prefix) for token in words_of(display_word))

        at = next((index for index, display_word in enumerate(spoken) if hits(display_word)), 0)
        start, end = max(0, at - SNIPPET_WORDS_BEFORE), min(len(spoken), at + 1 + SNIPPET_WORDS_AFTER)
        before = ("… " if start > 0 else "") + " ".join(spoken[start:at])
        after = " ".join(spoken[at + 1:end]) + (" …" if end < len(spoken) else "")
        return SearchResult(reference, created_at, anonymous, document.source.where,
                            before, spoken[at] if spoken else "", after)


def _chunks(values: list, size: int) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


_CREATE_LOCK = threading.Lock()


def index_for(extensions: dict, idle_seconds: float) -> SearchIndex:
    """This process's one index, held in app.extensions (created on first use)."""
    index = extensions.get(EXTENSION_KEY)
    if index is None:
        with _CREATE_LOCK:
            index = extensions.setdefault(EXTENSION_KEY, SearchIndex(idle_seconds))
    return index
