"""Turn a caller's recording, as fetched from Twilio, into samples the speech model can take.

Twilio sends 8 kHz mono WAV, but nothing here assumes the encoding: the WAV header is read, and
anything that is not plain PCM or G.711 (mu-law, a-law) goes through ffmpeg, which reads any
format it knows. An AudioError means the recording itself is unusable, so retrying will not
help; a missing ffmpeg is an environment problem and raises AudioToolMissing instead.
"""
from __future__ import annotations

import functools
import io
import shutil
import struct
import subprocess
import wave
from dataclasses import dataclass

from pydub import AudioSegment
import audioop  # after pydub, which imports it first (and warns once that 3.13 drops it)

MODEL_SAMPLE_RATE = 16000
SAMPLE_WIDTH = 2  # the model takes 16-bit signed little-endian PCM

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_ALAW = 0x0006
_WAVE_FORMAT_MULAW = 0x0007
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_G711_EXPANDERS = {_WAVE_FORMAT_MULAW: ("pcm_mulaw", audioop.ulaw2lin), _WAVE_FORMAT_ALAW: ("pcm_alaw", audioop.alaw2lin)}


class AudioError(ValueError):
    """The recording is empty, corrupt, or not audio at all."""


class AudioToolMissing(RuntimeError):
    """ffmpeg, which decodes and resamples audio, is not installed."""


@dataclass(frozen=True)
class PhoneAudio:
    """A decoded recording: mono 16-bit PCM at the rate it was recorded at."""

    segment: AudioSegment
    source_encoding: str  # what the bytes were, e.g. "wav/pcm_mulaw" or "mp3"

    @property
    def sample_rate(self) -> int:
        return int(self.segment.frame_rate)

    @property
    def duration_seconds(self) -> float:
        return self.segment.frame_count() / self.segment.frame_rate

    @property
    def samples(self) -> bytes:
        return self.segment.raw_data


@dataclass(frozen=True)
class _WavLayout:
    format_tag: int
    channels: int
    sample_rate: int
    bits_per_sample: int
    block_align: int  # bytes per frame
    frames: bytes  # the data chunk, cut to whole frames


def _read_wav(data: bytes) -> _WavLayout | None:
    """Parse a RIFF/WAVE header; None if `data` is not a WAV file at all."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    fmt: tuple[int, int, int, int, int] | None = None
    position = 12
    while position + 8 <= len(data):
        chunk_id, size = data[position:position + 4], struct.unpack_from("<I", data, position + 4)[0]
        body = position + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise AudioError("the WAV file's format header is truncated")
            tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and size >= 40 and body + 26 <= len(data):
                tag = struct.unpack_from("<H", data, body + 24)[0]  # first two bytes of the subformat GUID
            if channels == 0 or rate == 0 or block_align == 0:
                raise AudioError(f"the WAV header is invalid ({channels} channels at {rate} Hz)")
            fmt = (tag, channels, rate, bits, block_align)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioError("the WAV file has audio data before its format header")
            # Recorders that stream (and files cut short) leave a size past the end; keep what is there.
            frames = data[body:min(body + size, len(data))]
            frames = frames[:len(frames) - len(frames) % fmt[4]]
            return _WavLayout(*fmt, frames=frames)
        position = body + size + (size & 1)
    raise AudioError("the WAV file has no audio data chunk" if fmt else "the WAV file has no format header")


def _require_ffmpeg() -> str:
    ffmpeg = shutil.which(AudioSegment.converter) or shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioToolMissing("ffmpeg is needed to decode and resample recordings: `apt-get install ffmpeg`")
    return ffmpeg


def _run_ffmpeg(arguments: list[str], data: bytes, what: str) -> bytes:
    command = [_require_ffmpeg(), "-nostdin", "-hide_banner", "-v", "error", *arguments]
    completed = subprocess.run(command, input=data, capture_output=True, check=False)
    if completed.returncode != 0:
        message = completed.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"{what}: {message[-1] if message else f'ffmpeg exited with {completed.returncode}'}")
    return completed.stdout


def _pcm_from_wav(wav: _WavLayout) -> AudioSegment | None:
    """Decode the WAV encodings a phone recording comes in; None for anything else."""
    if wav.channels > 2 or wav.block_align != wav.channels * max(1, wav.bits_per_sample // 8):
        return None  # unusual layouts: ffmpeg reads them correctly and downmixes fast
    if wav.format_tag == _WAVE_FORMAT_PCM and wav.bits_per_sample in (8, 16, 24, 32):
        width = wav.bits_per_sample // 8
        # WAV stores 8-bit PCM unsigned, wider PCM signed.
        pcm = audioop.bias(wav.frames, 1, -128) if width == 1 else wav.frames
    elif wav.format_tag in _G711_EXPANDERS and wav.bits_per_sample == 8:
        # G.711 expands to 16-bit exactly by table; cheaper than starting ffmpeg for every call.
        width, pcm = SAMPLE_WIDTH, _G711_EXPANDERS[wav.format_tag][1](wav.frames, SAMPLE_WIDTH)
    else:
        return None
    segment = AudioSegment(data=pcm, sample_width=width, frame_rate=wav.sample_rate, channels=wav.channels)
    return segment.set_sample_width(SAMPLE_WIDTH).set_channels(1)


def _encoding_name(wav: _WavLayout) -> str:
    if wav.format_tag in _G711_EXPANDERS:
        return f"wav/{_G711_EXPANDERS[wav.format_tag][0]}"
    return "wav/pcm_u8" if wav.bits_per_sample == 8 else f"wav/pcm_s{wav.bits_per_sample}le"


def _probe_codec_name(data: bytes) -> str:
    """Name the codec ffmpeg decoded, for the record only: failing to name it is not an error."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return "unknown"
    completed = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=codec_name",
         "-of", "default=noprint_wrappers=1:nokey=1", "pipe:0"],
        input=data, capture_output=True, check=False,
    )
    return completed.stdout.decode(errors="replace").strip() or "unknown"


def pcm_wav(samples: bytes, sample_rate: int) -> bytes:
    """16-bit mono PCM as a WAV file, in memory (what the console plays and what referrals carry)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(SAMPLE_WIDTH)
        writer.setframerate(sample_rate)
        writer.writeframes(samples)
    return buffer.getvalue()


def decode_recording(data: bytes) -> PhoneAudio:
    """Decode a recording's bytes to mono 16-bit PCM at its own sample rate.

    A 0-byte body or undecodable bytes raise AudioError. A valid WAV with no samples is a
    recording of nothing and decodes to empty audio (its transcript is empty, not an error).
    """
    if not data:
        raise AudioError("the recording is empty (0 bytes)")
    wav = _read_wav(data)
    if wav is not None:
        segment = _pcm_from_wav(wav)
        if segment is not None:
            return PhoneAudio(segment, _encoding_name(wav))

    # Any other format or WAV encoding (MP3, float, ADPCM, GSM...): ffmpeg decodes its first audio stream.
    decoded = _run_ffmpeg(
        ["-i", "pipe:0", "-map", "0:a:0", "-ac", "1", "-c:a", "pcm_s16le", "-f", "wav", "pipe:1"],
        data,
        "the recording could not be decoded as audio",
    )
    layout = _read_wav(decoded)
    segment = _pcm_from_wav(layout) if layout is not None else None
    if segment is None or segment.frame_count() == 0:
        raise AudioError("the recording decodes to no audio samples")
    return PhoneAudio(segment, ("wav/" if wav is not None else "") + _probe_codec_name(data))


# soxr resamples best (benchmarks/transcription.py), but when it writes 16-bit samples itself it
# adds random dither, so the same recording would reach the model differently each time. Run it
# in float and let ffmpeg round to 16 bits, which is repeatable.
_SOXR_FILTER = "aresample=resampler=soxr:internal_sample_fmt=fltp"
_SWR_FILTER = "aresample=resampler=swr"


@functools.cache
def _resample_filter() -> str:
    """soxr if this ffmpeg was built with it (Debian's is), else ffmpeg's own resampler."""
    try:
        _run_ffmpeg(["-f", "s16le", "-ar", "8000", "-ac", "1", "-i", "pipe:0", "-af", _SOXR_FILTER,
                     "-ar", "16000", "-f", "s16le", "pipe:1"], bytes(320), "probing the soxr resampler")
    except AudioError:
        return _SWR_FILTER
    return _SOXR_FILTER


def resample_pcm(pcm: bytes, from_rate: int, to_rate: int, audio_filter: str | None = None) -> bytes:
    """Resample mono 16-bit PCM with ffmpeg; `audio_filter` overrides the resampler (for benchmarks)."""
    if from_rate == to_rate or not pcm:
        return pcm
    return _run_ffmpeg(
        ["-f", "s16le", "-ar", str(from_rate), "-ac", "1", "-i", "pipe:0",
         "-af", audio_filter or _resample_filter(), "-ar", str(to_rate), "-f", "s16le", "pipe:1"],
        pcm,
        f"resampling {from_rate} Hz audio to {to_rate} Hz failed",
    )


def to_model_input(audio: PhoneAudio, sample_rate: int = MODEL_SAMPLE_RATE) -> bytes:
    """The recording as 16-bit mono PCM at `sample_rate`, the rate the model computes features at.

    Telephone audio is 8 kHz and the model is 16 kHz. Measured on real speech sent through a
    telephone channel (python -m benchmarks.transcription), upsampling here with a proper
    band-limited resampler beats both handing Vosk 8 kHz and letting Kaldi upsample internally
    (the model's conf refuses that unless --allow-upsample is added) and pydub's set_frame_rate
    (audioop's interpolation leaves images above 4 kHz that the model hears as speech).
    """
    return resample_pcm(audio.samples, audio.sample_rate, sample_rate)
