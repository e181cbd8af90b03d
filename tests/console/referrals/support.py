"""Referral tests' helpers: a take whose audio and transcript line up, exporting as the page does, and
reading what came out (the zip, the PDF's text, the audio's loudness and pitch)."""
from __future__ import annotations

import io
import json
import math
import re
import subprocess
import wave
import zipfile
from dataclasses import dataclass

from sqlalchemy import select

from storage.cases import take_owner
from storage.models import Case, Recording
from tests.console.support import csrf_token
from transcription.recognizer import Transcript, Word

import audioop  # after transcription, whose pydub import takes its one deprecation warning

RATE = 8000


def voiced_wav(seconds: float, f0: float = 140.0, rate: int = RATE) -> bytes:
    """A steady voiced sound: a fundamental and its harmonics, as vocal folds make (loud everywhere, so
    any silence in it is ours)."""
    frames = bytearray()
    for n in range(int(seconds * rate)):
        t = n / rate
        value = sum(math.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 12))
        frames += int(7000 * value).to_bytes(2, "little", signed=True)
    return as_wav(bytes(frames), rate)


def as_wav(samples: bytes, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples)
    return buffer.getvalue()


def words_every(texts: str, step: float = 0.5, start: float = 0.25) -> list[Word]:
    return [Word(text, round(start + i * step, 3), round(start + i * step + 0.35, 3), 0.9)
            for i, text in enumerate(texts.split())]


def seal_take_audio(console, recording_id: int, wav: bytes) -> None:
    """The take's audio, sealed as the worker seals it."""
    with console.db.session() as session:
        recording = session.get(Recording, recording_id)
        item = console.sealer.seal_item(session, recording.case, "recording", wav, owner=take_owner(recording_id))
        recording.audio_item_id = item.id
        session.commit()


def seal_transcript(console, recording_id: int, words: list[Word]) -> None:
    transcript = Transcript(text=" ".join(w.text for w in words), words=words, model_name="test-model",
                            model_version="1", seconds_taken=0.1, audio_seconds=words[-1].end)
    with console.db.session() as session:
        recording = session.get(Recording, recording_id)
        item = console.sealer.seal_item(session, recording.case, "transcript", transcript.to_json(),
                                        owner=take_owner(recording_id))
        recording.transcript_item_id = item.id
        recording.transcription_status = "done"
        session.commit()


def case_id_of(console, reference: str) -> int:
    with console.db.session() as session:
        return session.scalar(select(Case.id).where(Case.reference == reference))


# --- the referral page ---------------------------------------------------------------------------------

SUGGESTED = re.compile(r'name="redact" value="(\d+:\d+)" checked')
VERSIONS = re.compile(r'name="(version-\d+)" value="(\d+)"')


@dataclass
class Exported:
    response: object

    @property
    def ok(self) -> bool:
        return self.response.status_code == 200

    @property
    def body(self) -> bytes:
        return self.response.get_data()

    def files(self, identity=None) -> dict[str, bytes]:
        data = self.body
        if identity is not None:
            import pyrage

            data = pyrage.decrypt(data, [identity])
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}

    def manifest(self, identity=None) -> dict:
        return json.loads(self.files(identity)["manifest.json"])


def exports(person, reference: str, *, force_id: int, summary: str = "An officer took a bribe at a traffic stop.",
            redact: list[tuple[int, int]] = (), keep_suggested: bool = False, audio: bool = False,
            disguise: bool = False, encrypt: bool = False, versions: dict | None = None) -> Exported:
    """Opens the referral page, as a handler does, and submits it with these choices."""
    page = person.get(f"/cases/{reference}/referral").get_data(as_text=True)
    chosen = [f"{recording_id}:{index}" for recording_id, index in redact]
    if keep_suggested:
        chosen += SUGGESTED.findall(page)
    form = {"csrf_token": csrf_token(page), "force": str(force_id), "summary": summary, "redact": chosen,
            **dict(VERSIONS.findall(page)), **(versions or {})}
    for name, ticked in (("audio", audio), ("disguise", disguise), ("encrypt", encrypt)):
        if ticked:
            form[name] = "1"
    return Exported(person.client.post(f"/cases/{reference}/referral", data=form))


def suggested_on_page(person, reference: str) -> list[str]:
    return SUGGESTED.findall(person.get(f"/cases/{reference}/referral").get_data(as_text=True))


# --- what came out ---------------------------------------------------------------------------------------

def pdf_text(pdf: bytes) -> str:
    """What a reader (or a search) gets from the PDF: poppler's pdftotext, through pipes."""
    completed = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True)
    return completed.stdout.decode()


def samples_of(wav_bytes: bytes) -> tuple[bytes, int]:
    with wave.open(io.BytesIO(wav_bytes)) as reader:
        assert reader.getsampwidth() == 2 and reader.getnchannels() == 1
        return reader.readframes(reader.getnframes()), reader.getframerate()


def rms_between(wav_bytes: bytes, start: float, end: float) -> int:
    samples, rate = samples_of(wav_bytes)
    return audioop.rms(samples[int(start * rate) * 2:int(end * rate) * 2], 2)


def fundamental(wav_bytes: bytes, start: float, end: float, low: float = 60.0, high: float = 400.0) -> float:
    """The pitch of a voiced stretch, in Hz: the lag at which the signal best matches itself
    (normalised autocorrelation), as a pitch tracker's first step does."""
    samples, rate = samples_of(wav_bytes)
    clip = [int.from_bytes(samples[i:i + 2], "little", signed=True)
            for i in range(int(start * rate) * 2, int(end * rate) * 2, 2)]
    best_lag, best = 0, -1.0
    for lag in range(int(rate / high), int(rate / low) + 1):
        a, b = clip[:-lag], clip[lag:]
        energy = math.sqrt(sum(x * x for x in a) * sum(y * y for y in b)) or 1.0
        score = sum(x * y for x, y in zip(a, b)) / energy
        if score > best:
            best_lag, best = lag, score
    return rate / best_lag


def formants(samples: bytes, rate: int, n: int = 256, grid: int = 80, order: int = 10) -> list[float]:
    """The peaks of the vocal tract's resonance curve, in Hz, averaged over the loud frames: an LPC
    envelope (autocorrelation, Levinson-Durbin) per frame, as a speech analyser estimates formants."""
    total, frames = [0.0] * grid, 0
    for first in range(0, len(samples) // 2 - n, n):
        x = [int.from_bytes(samples[2 * i:2 * i + 2], "little", signed=True) for i in range(first, first + n)]
        if math.sqrt(sum(v * v for v in x) / n) < 800:
            continue
        x = [x[i] - 0.95 * x[i - 1] if i else x[0] for i in range(n)]  # pre-emphasis, as for speech
        x = [v * (0.54 - 0.46 * math.cos(2 * math.pi * i / (n - 1))) for i, v in enumerate(x)]
        r = [sum(x[i] * x[i + k] for i in range(n - k)) for k in range(order + 1)]
        a, error = [1.0] + [0.0] * order, r[0]
        for i in range(1, order + 1):
            k = -(r[i] + sum(a[j] * r[i - j] for j in range(1, i))) / error
            a = [a[j] + k * a[i - j] if 0 < j < i else a[j] for j in range(order + 1)]
            a[i], error = k, error * (1 - k * k)
        frames += 1
        for g in range(grid):
            w = math.pi * (g + 0.5) / grid
            re = sum(c * math.cos(w * j) for j, c in enumerate(a))
            im = sum(-c * math.sin(w * j) for j, c in enumerate(a))
            total[g] -= 10 * math.log10(re * re + im * im)
    assert frames, "no loud frames to measure"
    return [(g + 0.5) * rate / 2 / grid for g in range(1, grid - 1) if total[g] > total[g - 1] and total[g] > total[g + 1]]
