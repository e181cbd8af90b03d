"""Referral packages, and the forces they go to. Plain Python over a SQLAlchemy session: no Flask here.

A package is built in memory from the case's newest transcripts and takes, with the words a handler chose
hidden: a PDF, the audio if chosen (silenced over those words; disguised for an anonymous caller, always),
and a manifest of every file's SHA-256, zipped, and encrypted to the force's age recipient when asked.
Nothing of it is written to disk; the caller sends the bytes and commits the Referral row and its audit
entry, which hold the SHA-256 of exactly what was sent and nothing of its content.
"""
from __future__ import annotations

import enum
import hashlib
import io
import json
import logging
import zipfile
from dataclasses import dataclass, field
from datetime import datetime

import pyrage
from pyrage import x25519
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit.services import record
from console.cases.services import DISPLAY_ZONE, category_label, kept_takes, moment_label, received_label
from console.keys import Opener
from console.referrals import audio as referral_audio
from console.referrals import pdf
from console.referrals.redaction import CandidateKind, candidates, redacted_text, silent_spans
from console.transcripts import MACHINE_VERSION, newest_transcript
from storage.cases import take_owner
from storage.models import AuditAction, Case, Force, Referral, User, utcnow
from transcription.audio import AudioError

log = logging.getLogger("hotline.console.referrals")

PACKAGE_FORMAT = "hotline-referral-v1"
SUMMARY_MAX_CHARS = 10_000
FORCE_NAME_MAX_CHARS = 128


class ReferralRefused(Exception):
    """The package cannot be made as asked; the message is safe to show (it quotes no case content)."""


class StaleReview(ReferralRefused):
    """A transcript changed after the handler reviewed it: their ticks may point at other words now."""


class ForceRefused(Exception):
    """A force cannot be registered or removed as asked; the message is safe to show."""


# --- what the handler reviews -------------------------------------------------------------------------

@dataclass(frozen=True)
class WordView:
    index: int
    text: str
    start: float
    end: float
    candidate: CandidateKind | None


@dataclass(frozen=True)
class TakeForReferral:
    recording_id: int
    number: int
    received_label: str
    version: int | None  # the newest transcript version, which the package uses; None: no transcript
    words: list[WordView]
    has_audio: bool
    duration: float

    @property
    def version_label(self) -> str:
        if self.version is None:
            return "no transcript yet"
        if self.version == MACHINE_VERSION:
            return "machine transcript"
        return f"corrected by a handler (version {self.version})"

    @property
    def audio_can_go(self) -> bool:
        """Audio goes only with a transcript: without one, nobody could see what to redact in it."""
        return self.has_audio and self.version is not None


@dataclass(frozen=True)
class CaseForReferral:
    case: Case
    reference: str
    anonymous: bool
    category_label: str
    received_label: str
    takes: list[TakeForReferral]

    @property
    def candidate_count(self) -> int:
        return sum(1 for take in self.takes for word in take.words if word.candidate is not None)


def _recording_words(transcript) -> list[WordView]:
    texts = [word.text for word in transcript.words]
    found = candidates(texts)
    return [WordView(index, word.text, word.start, word.end, found.get(index))
            for index, word in enumerate(transcript.words)]


def case_for_referral(session: Session, opener: Opener, case: Case) -> CaseForReferral:
    """The case's takes with their newest transcripts opened and candidates marked. Opens sealed items."""
    takes = []
    for recording, view in kept_takes(session, case):
        newest = newest_transcript(session, opener, recording)
        version, words = (newest[0], _recording_words(newest[1])) if newest else (None, [])
        duration = float(view.duration_seconds or 0)
        if words:
            duration = max(duration, words[-1].end)
        takes.append(TakeForReferral(recording.id, view.number, view.received_label, version, words,
                                     recording.audio_item is not None, duration))
    return CaseForReferral(case, case.reference, case.anonymous, category_label(case.category),
                           received_label(case.created_at, case.anonymous), takes)


def record_reviewed(session: Session, actor: User, prepared: CaseForReferral) -> None:
    """The page shows every take's transcript: each is a read, as the player's are."""
    for take in prepared.takes:
        if take.version is not None:
            record(session, AuditAction.TRANSCRIPT_VIEWED, actor=actor, case_reference=prepared.reference,
                   detail={"take": take.recording_id, "for": "referral"})


# --- the package ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportChoices:
    force_id: int
    summary: str
    redact: frozenset[tuple[int, int]]  # (recording id, word index) of the words to hide
    versions: dict[int, int] = field(default_factory=dict)  # recording id -> the version the handler reviewed
    include_audio: bool = False
    disguise: bool = False
    encrypt: bool = False


class AudioChoice(enum.StrEnum):
    NONE = "none"
    REDACTED = "redacted"
    DISGUISED = "redacted-and-disguised"


@dataclass(frozen=True)
class Package:
    data: bytes  # exactly what is sent
    file_name: str
    sha256: str
    zip_sha256: str  # of the zip inside, when the package is encrypted (else the same)
    with_audio: bool
    disguised: bool
    encrypted: bool
    redactions: int

    @property
    def audio(self) -> AudioChoice:
        if not self.with_audio:
            return AudioChoice.NONE
        return AudioChoice.DISGUISED if self.disguised else AudioChoice.REDACTED


def active_force(session: Session, force_id: int) -> Force | None:
    force = session.get(Force, force_id)
    return force if force is not None and force.removed_at is None else None


def _checked_redactions(prepared: CaseForReferral, choices: ExportChoices) -> dict[int, set[int]]:
    by_take: dict[int, set[int]] = {take.recording_id: set() for take in prepared.takes}
    for take in prepared.takes:
        if take.version is not None and choices.versions.get(take.recording_id) != take.version:
            raise StaleReview("A transcript on this case changed after the page was opened (a new take, or "
                                  "a correction). Nothing was exported: review the redactions again.")
    words = {take.recording_id: len(take.words) for take in prepared.takes}
    for recording_id, index in choices.redact:
        if recording_id not in words or not 0 <= index < words[recording_id]:
            raise ReferralRefused("The words chosen for redaction are not in this case's transcripts. "
                                  "Nothing was exported: open the page again.")
        by_take[recording_id].add(index)
    return by_take


@dataclass(frozen=True)
class PreparedStamp:
    label: str  # for the PDF
    iso: str  # for the manifest
    zip_time: tuple[int, int, int, int, int, int]
    file_part: str


def prepared_stamp(now: datetime, anonymous: bool) -> PreparedStamp:
    """When the package was made, as the package says it. For an anonymous caller only the day: a time
    soon after the call, to the minute, would narrow the hour the case shows down to a few minutes."""
    local = now.astimezone(DISPLAY_ZONE)
    if anonymous:
        return PreparedStamp(f"{local.day} {local:%b %Y}", local.date().isoformat(),
                             (local.year, local.month, local.day, 0, 0, 0), f"{local:%Y%m%d}")
    return PreparedStamp(moment_label(now), local.replace(second=0, microsecond=0).isoformat(),
                         (local.year, local.month, local.day, local.hour, local.minute, 0), f"{local:%Y%m%d-%H%M}")


def build_package(session: Session, opener: Opener, prepared: CaseForReferral, force: Force,
                  choices: ExportChoices, now: datetime | None = None) -> Package:
    """The package, in memory. Raises ReferralRefused for a choice that cannot be honoured."""
    stamp = prepared_stamp(now or utcnow(), prepared.anonymous)
    by_take = _checked_redactions(prepared, choices)
    recipient = None
    if choices.encrypt:
        if not force.age_recipient:
            raise ReferralRefused("This force has no public key registered, so the package cannot be encrypted "
                                  "to it. Untick encryption, or ask an admin to add the force's key.")
        recipient = x25519.Recipient.from_str(force.age_recipient)
    # An anonymous caller's voice leaves only disguised; a named caller's, disguised if the handler asks.
    disguised = choices.include_audio and (prepared.anonymous or choices.disguise)

    files: list[tuple[str, bytes]] = []
    take_texts, take_notes, runs_total, with_audio = [], [], 0, False
    recordings = {recording.id: recording for recording in prepared.case.recordings}
    for take in prepared.takes:
        hidden = by_take[take.recording_id]
        text, runs = redacted_text([word.text for word in take.words], hidden) if take.version else (None, 0)
        runs_total += runs
        note = "No audio of this take in the package."
        entry = {"take": take.number, "received": take.received_label, "transcript_version": take.version,
                 "redacted_passages": runs, "audio": None}
        if choices.include_audio and take.audio_can_go:
            name = f"take-{take.number}.wav"
            spans = silent_spans([(word.start, word.end) for word in take.words], hidden, take.duration + 5)
            try:
                stored = opener.open(session, recordings[take.recording_id].audio_item, take_owner(take.recording_id))
                files.append((name, referral_audio.referral_audio(stored, spans, disguised)))
            except AudioError:
                raise ReferralRefused(f"Take {take.number}'s audio cannot be decoded, so it cannot be redacted. "
                                      "Nothing was exported: export without audio.") from None
            except referral_audio.DisguiseUnavailable as error:
                log.error("voice disguise failed: %s", error)
                raise ReferralRefused("The voice disguise could not be applied (sox). Nothing was exported: "
                                      "export without audio, or tell an admin.") from None
            with_audio = True
            note = (f"Audio: {name}, silent over the redacted passages"
                    + (", voice disguised." if disguised else "."))
            entry["audio"] = name
        elif choices.include_audio and take.has_audio:
            note = "Audio left out: this take has no transcript yet, so it could not be reviewed for redaction."
        take_texts.append(pdf.TakeText(take.number, take.received_label, take.version_label, text, note))
        take_notes.append(entry)

    audio_label = ("None (text only)" if not with_audio else
                   "Redacted and voice-disguised (disguise is not perfect)" if disguised else "Redacted")
    document = pdf.ReferralDocument(
        prepared.reference, prepared.category_label, prepared.received_label, prepared.anonymous, force.name,
        stamp.label, choices.summary, take_texts, runs_total, audio_label)
    files.insert(0, ("referral.pdf", pdf.render(document)))
    manifest = {
        "format": PACKAGE_FORMAT,
        "reference": prepared.reference,
        "to": force.name,
        "prepared": stamp.iso,
        "audio": AudioChoice.DISGUISED if with_audio and disguised else AudioChoice.REDACTED if with_audio
        else AudioChoice.NONE,
        "redacted_passages": runs_total,
        "takes": take_notes,
        "files": [{"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for name, data in files],
    }
    files.append(("manifest.json", json.dumps(manifest, indent=2).encode()))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(zipfile.ZipInfo(name, date_time=stamp.zip_time), data, compress_type=zipfile.ZIP_DEFLATED)
    zipped = buffer.getvalue()
    sent = pyrage.encrypt(zipped, [recipient]) if recipient is not None else zipped
    file_name = f"referral-{prepared.reference}-{stamp.file_part}.zip" + (".age" if recipient is not None else "")
    return Package(sent, file_name, hashlib.sha256(sent).hexdigest(), hashlib.sha256(zipped).hexdigest(),
                   with_audio, with_audio and disguised, recipient is not None, runs_total)


def record_referral(session: Session, case: Case, force: Force, actor: User, package: Package) -> Referral:
    """The Referral row and its audit entry; the caller commits them together before sending the bytes."""
    referral = Referral(case_id=case.id, force_id=force.id, actor_id=actor.id, sha256=package.sha256,
                        size=len(package.data), with_audio=package.with_audio, disguised=package.disguised,
                        encrypted=package.encrypted, redactions=package.redactions)
    session.add(referral)
    session.flush()
    record(session, AuditAction.REFERRAL_EXPORTED, actor=actor, case_reference=case.reference,
           detail={"referral": referral.id, "force": force.id, "sha256": package.sha256, "bytes": len(package.data),
                   "audio": package.audio, "encrypted": package.encrypted, "redacted_passages": package.redactions})
    return referral


# --- past referrals, on the case page -------------------------------------------------------------------

@dataclass(frozen=True)
class ReferralRow:
    when_label: str
    force_name: str
    actor_name: str | None
    audio_label: str
    encrypted: bool
    sha256: str
    size: int


def past_referrals(session: Session, case_id: int) -> list[ReferralRow]:
    rows = session.scalars(select(Referral).where(Referral.case_id == case_id)
                           .order_by(Referral.created_at.desc(), Referral.id.desc()))
    return [ReferralRow(moment_label(row.created_at), row.force.name, row.actor.display_name if row.actor else None,
                        "none" if not row.with_audio else "redacted, disguised" if row.disguised else "redacted",
                        row.encrypted, row.sha256, row.size)
            for row in rows]


# --- forces ---------------------------------------------------------------------------------------------

def forces(session: Session) -> list[Force]:
    return list(session.scalars(select(Force).where(Force.removed_at.is_(None)).order_by(Force.name)))


def checked_recipient(text: str) -> str:
    """An age X25519 recipient ("age1..."), as a force's `age-keygen` prints it; ForceRefused if not one."""
    text = text.strip()
    if not text.startswith("age1") or len(text) > 128:
        raise ForceRefused("The public key must be an age recipient: one line starting \"age1\", "
                           "as `age-keygen` prints it.")
    try:
        x25519.Recipient.from_str(text)
    except Exception:  # pyrage raises its own error type for a malformed key
        raise ForceRefused("That public key is not a valid age recipient; check it was copied whole.") from None
    return text


def register_force(session: Session, actor: User, name: str, recipient: str | None) -> Force:
    existing = session.scalar(select(Force).where(Force.name == name))
    if existing is not None and existing.removed_at is None:
        raise ForceRefused("A force of that name is registered already; remove it first to change its key.")
    if existing is not None:  # registered again after a removal: the same row, so past referrals still name it
        existing.removed_at, existing.age_recipient, existing.created_by_id = None, recipient, actor.id
        force = existing
    else:
        force = Force(name=name, age_recipient=recipient, created_by_id=actor.id)
        session.add(force)
    session.flush()
    record(session, AuditAction.FORCE_REGISTERED, actor=actor,
           detail={"force": force.id, "with_key": recipient is not None})
    return force


def remove_force(session: Session, actor: User, force_id: int) -> Force:
    force = active_force(session, force_id)
    if force is None:
        raise ForceRefused("There is no such force, or it was removed already.")
    force.removed_at = utcnow()
    record(session, AuditAction.FORCE_REMOVED, actor=actor, detail={"force": force.id})
    session.flush()
    return force

