"""A take's transcript versions: the machine's (version 1, never changed) and each handler's correction.

Version 1 is Recording.transcript_item. Every correction is a whole new Transcript, sealed as a
"transcript-version" item, with a TranscriptVersion row numbering it (2, 3, ...; unique per take). So
the newest version is always one sealed document to open (search and exports read it whole), and every
earlier version stays exactly as it was saved. Functions here take a database session and leave the
commit to the caller, which commits the correction, its case event and its audit entry together.
"""
from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from console.audit.services import record
from console.keys import Opener
from storage.cases import Sealer, take_owner, version_owner
from storage.models import (
    AuditAction,
    CaseEvent,
    CaseEventKind,
    Recording,
    SealedItem,
    TranscriptVersion,
    User,
)
from transcription.recognizer import Transcript, Word

MACHINE_VERSION = 1
CORRECTION_KIND = "transcript-version"
# Enough for a sentence or two typed over a selected span; a correction is not a place to paste a statement.
MAX_CORRECTION_CHARS = 1000
MAX_CORRECTION_WORDS = 200


class CorrectionRefused(ValueError):
    """The correction cannot be made as asked; the message says why, in words a handler can act on."""


class StaleVersion(Exception):
    """The correction was made against a version that is no longer the newest."""

    def __init__(self, newest: int):
        super().__init__(f"version {newest} is now the newest")
        self.newest = newest


@dataclass(frozen=True)
class VersionInfo:
    """What is known about a version without opening it."""

    number: int
    author: str | None  # the correcting handler's display name; None for the machine's transcript
    created_at: datetime
    item: SealedItem
    owner: str  # what the item's seal must name: the take (version 1), or the take and version

    @property
    def is_machine(self) -> bool:
        return self.number == MACHINE_VERSION


def versions(session: Session, recording: Recording) -> list[VersionInfo]:
    """Every version of the take's transcript, oldest first; empty while there is no transcript."""
    found: list[VersionInfo] = []
    if recording.transcript_item is not None:
        found.append(VersionInfo(MACHINE_VERSION, None, recording.transcript_item.created_at, recording.transcript_item,
                                 take_owner(recording.id)))
    rows = session.scalars(
        select(TranscriptVersion).where(TranscriptVersion.recording_id == recording.id).order_by(TranscriptVersion.version)
    )
    for row in rows:
        found.append(VersionInfo(row.version, row.author.display_name if row.author else None, row.created_at, row.item,
                                 version_owner(recording.id, row.version)))
    return found


def open_version(session: Session, opener: Opener, info: VersionInfo) -> Transcript:
    return Transcript.from_json(opener.open(session, info.item, info.owner))


def newest_transcript(session: Session, opener: Opener, recording: Recording) -> tuple[int, Transcript] | None:
    """The version everyone should read (search, exports, the player): the newest correction, or the
    machine's transcript while there is none. None while the take has no transcript."""
    known = versions(session, recording)
    if not known:
        return None
    return known[-1].number, open_version(session, opener, known[-1])


def all_versions(session: Session, opener: Opener, recording: Recording) -> list[tuple[VersionInfo, Transcript]]:
    return [(info, open_version(session, opener, info)) for info in versions(session, recording)]


# --- a correction -------------------------------------------------------------------------------

def corrected_words(text: str) -> list[str]:
    """The words a handler typed, checked. An empty text removes the selected words."""
    if len(text) > MAX_CORRECTION_CHARS:
        raise CorrectionRefused(f"A correction can be at most {MAX_CORRECTION_CHARS} characters; "
                                "correct a shorter span at a time.")
    words = text.split()
    if len(words) > MAX_CORRECTION_WORDS:
        raise CorrectionRefused(f"A correction can be at most {MAX_CORRECTION_WORDS} words; "
                                "correct a shorter span at a time.")
    if any(unicodedata.category(character) in ("Cc", "Cf", "Cs", "Co", "Cn") for word in words for character in word):
        raise CorrectionRefused("The correction contains control or unassigned characters; type it as plain text.")
    return words


def replace_span(transcript: Transcript, start: int, end: int, new_texts: list[str]) -> Transcript:
    """Words start..end (inclusive) replaced by new_texts, which share the replaced span's time between
    them in proportion to their length, so the highlight and seeking still line up with the audio."""
    words = transcript.words
    if not words:
        raise CorrectionRefused("This transcript has no words to correct.")
    if not (0 <= start <= end < len(words)):
        raise CorrectionRefused(f"The selected words are not in this transcript (it has words 0 to {len(words) - 1}).")
    span_start, span_end = words[start].start, max(words[end].end, words[start].start)
    total = sum(len(text) for text in new_texts)
    replacements: list[Word] = []
    used = 0
    for text in new_texts:
        begins = span_start + (span_end - span_start) * used / total
        used += len(text)
        ends = span_end if used == total else span_start + (span_end - span_start) * used / total
        replacements.append(Word(text, round(begins, 3), round(ends, 3), 1.0, corrected=True))
    if replacements:
        # Rounding must not move the span's own edges.
        replacements[0] = replace(replacements[0], start=span_start)
        replacements[-1] = replace(replacements[-1], end=span_end)
    new_words = [*words[:start], *replacements, *words[end + 1:]]
    return replace(transcript, words=new_words, text=" ".join(word.text for word in new_words))


def correct(session: Session, opener: Opener, sealer: Sealer, author: User, recording: Recording,
            base_version: int, start: int, end: int, text: str) -> int:
    """Save a correction of words start..end of base_version as a new version; returns its number.

    Raises StaleVersion if base_version is not the newest (someone else saved first: the handler must
    see their correction before making another), CorrectionRefused for a correction that cannot be made.
    """
    new_texts = corrected_words(text)
    # Serialise corrections of one take (a row lock on PostgreSQL; SQLite has one writer anyway), and
    # let the unique (recording, version) constraint catch whatever still races.
    session.execute(select(Recording.id).where(Recording.id == recording.id).with_for_update())
    known = versions(session, recording)
    if not known:
        raise CorrectionRefused("This take has no transcript yet, so there is nothing to correct.")
    newest = known[-1]
    if base_version != newest.number:
        raise StaleVersion(newest.number)
    corrected = replace_span(open_version(session, opener, newest), start, end, new_texts)
    number = newest.number + 1
    try:
        with session.begin_nested():
            item = sealer.seal_item(
                session, recording.case, CORRECTION_KIND, corrected.to_json(),
                note={"version": number, "base_version": base_version, "words": len(corrected.words)},
                owner=version_owner(recording.id, number),
            )
            session.add(TranscriptVersion(recording_id=recording.id, version=number, item_id=item.id, author_id=author.id))
            session.flush()
    except IntegrityError:
        newest_number = session.scalar(
            select(func.max(TranscriptVersion.version)).where(TranscriptVersion.recording_id == recording.id))
        raise StaleVersion(newest_number or number) from None
    session.add(CaseEvent(case_id=recording.case_id, kind=CaseEventKind.CORRECTION, actor_id=author.id,
                          old_value=str(base_version), new_value=str(number), item_id=item.id,
                          recording_id=recording.id))
    record(session, AuditAction.TRANSCRIPT_CORRECTED, actor=author, case_reference=recording.case.reference,
           detail={"take": recording.id, "version": number})
    session.flush()
    return number


# --- the history: each version beside the one before it --------------------------------------------

@dataclass(frozen=True)
class Segment:
    kind: str  # "same", "added" (new in this version) or "removed" (in the version before, not in this one)
    text: str


@dataclass(frozen=True)
class HistoryColumn:
    number: int
    author: str | None
    created_at: datetime
    segments: list[Segment]
    changed_words: int  # words replaced, added or removed against the version before

    @property
    def is_machine(self) -> bool:
        return self.number == MACHINE_VERSION


def compare(before: list[str], after: list[str]) -> list[Segment]:
    """`after` as runs of words, with what changed since `before` marked (difflib over the word lists)."""
    segments: list[Segment] = []
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for operation, a_from, a_to, b_from, b_to in matcher.get_opcodes():
        if operation == "equal":
            segments.append(Segment("same", " ".join(after[b_from:b_to])))
            continue
        if a_to > a_from:
            segments.append(Segment("removed", " ".join(before[a_from:a_to])))
        if b_to > b_from:
            segments.append(Segment("added", " ".join(after[b_from:b_to])))
    return segments


def changed_words(before: list[str], after: list[str]) -> int:
    """How many words a version changed: "parked by" corrected to "walked past" is two, not four."""
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    return sum(max(a_to - a_from, b_to - b_from)
               for operation, a_from, a_to, b_from, b_to in matcher.get_opcodes() if operation != "equal")


def history(session: Session, opener: Opener, recording: Recording) -> list[HistoryColumn]:
    columns: list[HistoryColumn] = []
    previous: list[str] | None = None
    for info, transcript in all_versions(session, opener, recording):
        texts = [word.text for word in transcript.words]
        if previous is None:
            segments, changed = ([Segment("same", " ".join(texts))] if texts else []), 0
        else:
            segments, changed = compare(previous, texts), changed_words(previous, texts)
        columns.append(HistoryColumn(info.number, info.author, info.created_at, segments, changed))
        previous = texts
    return columns
