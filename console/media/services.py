"""The media views' plain-Python parts: which takes can be heard, the audio a browser can play, byte
ranges, waveform peaks, the transcript as JSON, and "once per session per take" for the audit trail.

Everything here works on bytes in memory. Decrypted audio is never written anywhere: not to a temp
file, not to a cache (each request opens the sealed item again; a take is a few megabytes at most).
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import Enum
from typing import Any, MutableMapping

from sqlalchemy.orm import Session

from console.transcripts import VersionInfo
from storage.models import Recording
from transcription.audio import SAMPLE_WIDTH, decode_recording, pcm_wav
from transcription.recognizer import Transcript

import audioop  # after transcription.audio, whose pydub import takes its one deprecation warning

# --- which takes -----------------------------------------------------------------------------------

def audible_take(session: Session, recording_id: int) -> Recording | None:
    """The take, unless it does not exist or the caller discarded it (a discarded take is gone everywhere)."""
    recording = session.get(Recording, recording_id)
    if recording is None or recording.decision != "keep":
        return None
    return recording


class TranscriptState(str, Enum):
    PENDING = "pending"
    FAILED = "failed"
    DONE = "done"


def transcript_state(recording: Recording, has_versions: bool) -> TranscriptState:
    if has_versions:
        return TranscriptState.DONE
    return TranscriptState.FAILED if recording.transcription_status == "failed" else TranscriptState.PENDING


# --- audio a browser can play ------------------------------------------------------------------------

# WAV encodings Debian's Chromium plays as they are (checked with chromium 156 in headless mode: 8 kHz
# 16-bit PCM, mu-law and a-law WAVs all load, report their duration and play). Twilio's recordings
# are one of these, so they are served byte for byte. Anything else is decoded and served as 16-bit
# PCM WAV, which every browser plays; the decoding is deterministic, so every Range request of one
# take slices the same bytes.
_PLAYABLE_WAV = {(1, 8), (1, 16), (6, 8), (7, 8)}  # (format tag, bits per sample): PCM, a-law, mu-law


def _wav_format(data: bytes) -> tuple[int, int] | None:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    position = 12
    while position + 8 <= len(data):
        chunk_id, size = data[position:position + 4], struct.unpack_from("<I", data, position + 4)[0]
        if chunk_id == b"fmt ":
            if position + 8 + 16 > len(data):
                return None
            tag, channels, _rate, _bytes_per_second, _align, bits = struct.unpack_from("<HHIIHH", data, position + 8)
            return (tag, bits) if channels in (1, 2) else None
        position += 8 + size + (size & 1)
    return None


def playable_audio(stored: bytes) -> bytes:
    """The take as a WAV that Chromium plays. Raises transcription.audio.AudioError if it is not audio."""
    if _wav_format(stored) in _PLAYABLE_WAV:
        return stored
    audio = decode_recording(stored)
    return pcm_wav(audio.samples, audio.sample_rate)


# --- byte ranges (RFC 9110 section 14) ---------------------------------------------------------------

class RangeKind(str, Enum):
    WHOLE = "whole"  # no Range, or one we ignore (another unit, several ranges, malformed): 200
    PARTIAL = "partial"  # 206
    UNSATISFIABLE = "unsatisfiable"  # 416


@dataclass(frozen=True)
class ByteRange:
    kind: RangeKind
    start: int = 0
    end: int = 0  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1


# At most 18 digits: larger numbers are no real offset, and the limit keeps parsing trivial.
_SPEC = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


def parse_range(header: str | None, size: int) -> ByteRange:
    """One byte range of a body of `size` bytes. A header we cannot read is ignored (the whole body),
    as RFC 9110 allows; a well-formed range that lies outside the body is unsatisfiable."""
    if not header:
        return ByteRange(RangeKind.WHOLE)
    match = _SPEC.match(header.strip().replace(" ", ""))
    if match is None:
        return ByteRange(RangeKind.WHOLE)  # another unit, several ranges, or nonsense
    first, last = match.groups()
    if not first and not last:
        return ByteRange(RangeKind.WHOLE)
    if not first:  # "-n": the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return ByteRange(RangeKind.UNSATISFIABLE)
        return ByteRange(RangeKind.PARTIAL, max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return ByteRange(RangeKind.WHOLE)  # "5-2" is not a valid range: ignore it
    if start >= size:
        return ByteRange(RangeKind.UNSATISFIABLE)
    return ByteRange(RangeKind.PARTIAL, start, min(end, size - 1))


# --- waveform peaks ---------------------------------------------------------------------------------

DEFAULT_BUCKETS = 800
MAX_BUCKETS = 4000


@dataclass(frozen=True)
class Peaks:
    duration: float
    sample_rate: int
    minima: list[float]  # per bucket, -1..0
    maxima: list[float]  # per bucket, 0..1

    def as_json(self, recording_id: int) -> dict[str, Any]:
        return {"take": recording_id, "buckets": len(self.minima), "duration": round(self.duration, 3),
                "sample_rate": self.sample_rate, "min": self.minima, "max": self.maxima}


def peaks(audio: bytes, buckets: int = DEFAULT_BUCKETS) -> Peaks:
    """Min and max of each of `buckets` equal slices of the take (empty slices, in audio shorter than
    `buckets` samples, are 0), so the browser draws the waveform without decoding the audio itself."""
    decoded = decode_recording(audio)
    samples = decoded.samples
    count = len(samples) // SAMPLE_WIDTH
    minima, maxima = [], []
    for bucket in range(buckets):
        first, last = bucket * count // buckets, (bucket + 1) * count // buckets
        if last <= first:
            minima.append(0.0)
            maxima.append(0.0)
            continue
        low, high = audioop.minmax(samples[first * SAMPLE_WIDTH:last * SAMPLE_WIDTH], SAMPLE_WIDTH)
        minima.append(round(min(low, 0) / 32768, 4))
        maxima.append(round(max(high, 0) / 32767, 4))
    return Peaks(decoded.duration_seconds, decoded.sample_rate, minima, maxima)


# --- the transcript as the player reads it -------------------------------------------------------------

def version_json(info: VersionInfo) -> dict[str, Any]:
    return {"version": info.number, "author": info.author, "machine": info.is_machine,
            "created_at": info.created_at.isoformat(timespec="seconds")}


def transcript_json(recording: Recording, known: list[VersionInfo], shown: VersionInfo | None,
                    transcript: Transcript | None, low_confidence: float) -> dict[str, Any]:
    state = transcript_state(recording, bool(known))
    document: dict[str, Any] = {
        "take": recording.id,
        "status": state.value,
        "low_confidence": low_confidence,
        "versions": [version_json(info) for info in known],
        "newest_version": known[-1].number if known else None,
    }
    if shown is None or transcript is None:
        document["message"] = ("Transcription failed; an operator can run it again." if state is TranscriptState.FAILED
                               else "The transcript is not ready yet.")
        document["words"] = []
        return document
    document.update(version_json(shown))
    document["words"] = [
        {"index": index, "text": word.text, "start": word.start, "end": word.end,
         "confidence": word.confidence, "corrected": word.corrected}
        for index, word in enumerate(transcript.words)
    ]
    return document


# --- once per session, per take, per ten minutes ----------------------------------------------------------

SEEN_KEY = "media_seen"
SEEN_WINDOW_SECONDS = 600


def first_look(browser_session: MutableMapping[str, Any], what: str, recording_id: int, now: float) -> bool:
    """True if this session has not had `what` ("audio", "transcript") of this take in the last ten
    minutes, and remembers that it has now. One play is several Range requests, and the player fetches
    the transcript again after each correction; the audit trail wants one entry for each, not dozens.

    The times live in the server-side session (ids and times only), pruned as they expire."""
    stored = browser_session.get(SEEN_KEY)
    stored = stored if isinstance(stored, dict) else {}
    seen = {key: at for key, at in stored.items()
            if isinstance(at, (int, float)) and 0 <= now - at < SEEN_WINDOW_SECONDS}
    key = f"{what}:{recording_id}"
    first = key not in seen
    if first:
        seen[key] = now
    if seen != stored:
        # Assigned, not changed in place, so the session knows it changed and saves it.
        browser_session[SEEN_KEY] = seen
    return first
