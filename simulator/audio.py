"""Small WAV helpers: what a simulated caller says, and what Twilio's recorder makes of it.

Only PCM WAV is understood (what ``wave`` reads). Twilio's own recordings are 8 kHz, 16-bit mono;
the simulator keeps whatever format it is given and does not resample.
"""
from __future__ import annotations

import io
import math
import struct
import wave
from array import array
from dataclasses import dataclass

from .errors import SimulatorError

# A sample whose magnitude is at most this fraction of full scale counts as silence.
SILENCE_THRESHOLD = 0.01
# Trimming keeps this much silence around the sound (so a tone starting at zero is not "trimmed").
TRIM_MARGIN_SECONDS = 0.05


@dataclass(frozen=True)
class WavInfo:
    channels: int
    sample_width: int
    frame_rate: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.frame_rate if self.frame_rate else 0.0


def wav_info(data: bytes) -> WavInfo:
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            return WavInfo(reader.getnchannels(), reader.getsampwidth(), reader.getframerate(), reader.getnframes())
    except (wave.Error, EOFError, struct.error) as exc:
        raise SimulatorError(f"the caller's audio is not a PCM WAV file ({exc})") from exc


def encoded_duration(data: bytes) -> float:
    """Duration of a WAV in any encoding (mu-law, a-law, ...) from its RIFF chunks; Twilio keeps such
    audio as it is, so the simulator does too. Not a WAV at all: counted as one second."""
    byte_rate = size = None
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        offset = 12
        while offset + 8 <= len(data):
            chunk, length = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
            if chunk == b"fmt " and length >= 12:
                byte_rate = struct.unpack("<I", data[offset + 16:offset + 20])[0]
            elif chunk == b"data":
                size = min(length, len(data) - offset - 8)
                break
            offset += 8 + length + (length & 1)
    if byte_rate and size is not None:
        return size / byte_rate
    return 1.0


def _read(data: bytes) -> tuple[WavInfo, bytes]:
    info = wav_info(data)
    with wave.open(io.BytesIO(data), "rb") as reader:
        return info, reader.readframes(info.frames)


def _write(info: WavInfo, frames: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(info.channels)
        writer.setsampwidth(info.sample_width)
        writer.setframerate(info.frame_rate)
        writer.writeframes(frames)
    return out.getvalue()


def _loud_span(info: WavInfo, frames: bytes) -> tuple[int, int] | None:
    """(first, last + 1) frame index of non-silent audio; (0, 0) if all silent; None if unsupported."""
    if info.sample_width == 1:
        samples, offset, full_scale = frames, 128, 128
    elif info.sample_width == 2:
        samples, offset, full_scale = array("h", frames), 0, 32768
    elif info.sample_width == 4:
        samples, offset, full_scale = array("i", frames), 0, 2**31
    else:
        return None
    limit = SILENCE_THRESHOLD * full_scale
    loud = lambda index: abs(samples[index] - offset) > limit  # noqa: E731
    first = next((i for i in range(len(samples)) if loud(i)), None)
    if first is None:
        return 0, 0
    last = next(i for i in range(len(samples) - 1, -1, -1) if loud(i))
    return first // info.channels, last // info.channels + 1


def trim_silence(data: bytes) -> tuple[bytes, float]:
    """Drop leading and trailing silence, as <Record trim="trim-silence"> does.

    Returns the trimmed WAV and its duration in seconds; a duration of 0 means the recording was
    empty (all silence). Audio with nothing to trim is returned byte for byte.
    """
    info, frames = _read(data)
    span = _loud_span(info, frames)
    if span is None:
        return data, info.duration
    first, last = span
    if last == 0:
        return _write(info, b""), 0.0
    margin = int(TRIM_MARGIN_SECONDS * info.frame_rate)
    first, last = max(0, first - margin), min(info.frames, last + margin)
    if first == 0 and last == info.frames:
        return data, info.duration
    size = info.channels * info.sample_width
    return _write(info, frames[first * size:last * size]), (last - first) / info.frame_rate


def truncate(data: bytes, seconds: float) -> tuple[bytes, float]:
    """Keep the first ``seconds`` of audio, as <Record maxLength> does."""
    info, frames = _read(data)
    keep = min(info.frames, int(seconds * info.frame_rate))
    if keep == info.frames:
        return data, info.duration
    size = info.channels * info.sample_width
    return _write(info, frames[:keep * size]), keep / info.frame_rate


def tone_wav(seconds: float = 2.0, frequency: float = 440.0, frame_rate: int = 8000, amplitude: float = 0.5) -> bytes:
    """A mono 16-bit sine tone: something non-silent for a simulated caller to 'say'."""
    count = int(seconds * frame_rate)
    peak = int(amplitude * 32767)
    samples = array("h", (int(peak * math.sin(2 * math.pi * frequency * n / frame_rate)) for n in range(count)))
    return _write(WavInfo(1, 2, frame_rate, count), samples.tobytes())


def silence_wav(seconds: float = 2.0, frame_rate: int = 8000) -> bytes:
    """A mono 16-bit WAV of pure silence: a caller who says nothing."""
    count = int(seconds * frame_rate)
    return _write(WavInfo(1, 2, frame_rate, count), bytes(2 * count))


def padded_wav(speech: bytes, before: float = 0.0, after: float = 0.0) -> bytes:
    """``speech`` with silence added before and after (to exercise trimming)."""
    info, frames = _read(speech)
    size = info.channels * info.sample_width
    silent = b"\x80" if info.sample_width == 1 else b"\x00"
    pad = lambda seconds: silent * (int(seconds * info.frame_rate) * size)  # noqa: E731
    body = pad(before) + frames + pad(after)
    return _write(WavInfo(info.channels, info.sample_width, info.frame_rate, len(body) // size), body)
