"""Audio made for tests: a short 8 kHz WAV like Twilio's, with a marker we can search disks for."""
from __future__ import annotations

import io
import math
import wave


def phone_wav(seconds: float = 1.0, frequency: float = 440.0, rate: int = 8000) -> bytes:
    frames = bytearray()
    for n in range(int(seconds * rate)):
        value = int(12000 * math.sin(2 * math.pi * frequency * n / rate) + 7 * (n % 13))
        frames += value.to_bytes(2, "little", signed=True)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(bytes(frames))
    return buffer.getvalue()


def distinctive_chunk(wav: bytes) -> bytes:
    """64 bytes from the middle of the samples: if these are on disk, the audio is there in the clear."""
    middle = len(wav) // 2
    return wav[middle : middle + 64]
