"""A take's audio for a referral: decoded in memory, silenced over redacted words, and (for the caller's
protection) voice-disguised with sox. Every step works on bytes in memory; sox reads raw samples from a
pipe and writes them to a pipe, so no decrypted audio ever reaches a file.

The disguise is sox's `pitch` effect, which shifts pitch and formants together by the same ratio (it
resamples and time-stretches, WSOLA): the voice sounds like another person's, but the shift is constant,
so someone who shifts it back by the same amount hears something close to the original. (Moving the
formants apart from the pitch was tried with ffmpeg's rubberband filter, formant=preserved: measured with
LPC on a vowel, its formants moved with the pitch all the same, so it bought nothing.) It is no guarantee
of anonymity, and the console says so wherever it is offered.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from console.referrals.redaction import Span
from transcription.audio import SAMPLE_WIDTH, AudioError, decode_recording, pcm_wav

# Down by four semitones: far enough that a familiar voice is not recognised at once, near enough that
# the words stay clear on a phone line's bandwidth.
DISGUISE_CENTS = -400
TOOL_TIMEOUT_SECONDS = 60
NO_TEMP_FILES = "/proc/hotline-no-temp-files"  # /proc takes no new folders


class DisguiseUnavailable(RuntimeError):
    """sox is missing or failed: the package is not made with undisguised audio instead."""


@dataclass(frozen=True)
class Pcm:
    """Mono 16-bit little-endian samples."""

    samples: bytes
    rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_WIDTH / self.rate


def decode(stored: bytes) -> Pcm:
    """Raises transcription.audio.AudioError if the bytes are not audio."""
    audio = decode_recording(stored)
    return Pcm(audio.samples, audio.sample_rate)


def silence(pcm: Pcm, spans: list[Span]) -> Pcm:
    """Zeroes (true silence, not a bleep: nothing of the voice, not even its rhythm under a tone)."""
    samples = bytearray(pcm.samples)
    count = len(samples) // SAMPLE_WIDTH
    for span in spans:
        first = max(0, min(count, int(span.start * pcm.rate)))
        end = max(first, min(count, int(span.end * pcm.rate + 0.999)))
        samples[first * SAMPLE_WIDTH:end * SAMPLE_WIDTH] = bytes((end - first) * SAMPLE_WIDTH)
    return Pcm(bytes(samples), pcm.rate)


def _piped(command: list[str], samples: bytes, tool: str) -> bytes:
    try:
        completed = subprocess.run(command, input=samples, capture_output=True, check=False,
                                   timeout=TOOL_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise DisguiseUnavailable(f"{tool} took too long") from None
    if completed.returncode != 0:
        # The audio went through a pipe, so the tool's message names no file; it is not logged whole anyway.
        raise DisguiseUnavailable(f"{tool} exited with {completed.returncode}")
    return completed.stdout


def disguise(pcm: Pcm, cents: int = DISGUISE_CENTS) -> Pcm:
    """The same words in a shifted voice, the same length."""
    sox = shutil.which("sox")
    if sox is None:
        raise DisguiseUnavailable("sox is needed for the voice disguise (apt-get install sox)")
    raw = ["-t", "raw", "-r", str(pcm.rate), "-e", "signed-integer", "-b", "16", "-c", "1", "-L"]
    # `pitch` streams; --temp names a folder that cannot exist, so any effect that would spill samples to
    # a temporary file fails instead of writing the caller's voice to disk.
    samples = _piped([sox, "-q", "-V1", "--temp", NO_TEMP_FILES, *raw, "-", *raw, "-", "pitch", str(cents)],
                     pcm.samples, "sox")
    samples = samples[:len(pcm.samples)]
    samples += bytes(len(pcm.samples) - len(samples))  # same length, so the spans still line up
    return Pcm(samples, pcm.rate)


def wav(pcm: Pcm) -> bytes:
    return pcm_wav(pcm.samples, pcm.rate)


def referral_audio(stored: bytes, spans: list[Span], disguised: bool) -> bytes:
    """The take as it leaves the charity: silent over `spans`, disguised if asked, as a 16-bit WAV.
    Silenced again after the disguise, because the pitch effect's windows smear a little sound from the
    edges into the gaps."""
    pcm = silence(decode(stored), spans)
    if disguised:
        pcm = silence(disguise(pcm), spans)
    return wav(pcm)


__all__ = ["AudioError", "DisguiseUnavailable", "Pcm", "decode", "disguise", "referral_audio", "silence", "wav"]
