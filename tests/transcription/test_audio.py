from __future__ import annotations

import math
import struct
import subprocess

import pytest

from tests.support import speech_corpus
from transcription.audio import AudioError, decode_recording, to_model_input

LIBRIVOX = "librivox/sense_and_sensibility_01_austen_64kb-0870"  # 7.1 s


def _sox_pcm(data: bytes, rate: int | None = None) -> bytes:
    """A second, independent decoder to compare with: sox's output as mono 16-bit PCM."""
    effects = ["channels", "1"] + (["rate", "-v", str(rate)] if rate else [])
    completed = subprocess.run(
        ["sox", "-D", "-V1", "-", "-t", "raw", "-e", "signed-integer", "-b", "16", "-", *effects],
        input=data, capture_output=True, check=True,
    )
    return completed.stdout


def _wav(format_tag: int, channels: int, rate: int, bits: int, frames: bytes, data_size: int | None = None) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * block, block, bits)
    size = len(frames) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + frames
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _tone(frequency: float, rate: int, seconds: float, amplitude: int = 8000) -> bytes:
    count = int(rate * seconds)
    return struct.pack(f"<{count}h", *(int(amplitude * math.sin(2 * math.pi * frequency * i / rate)) for i in range(count)))


def _rms_db_above(pcm: bytes, rate: int, cutoff_hz: int | None = None) -> float:
    """RMS level (dBFS) of `pcm`, or of what is left of it above `cutoff_hz`, measured by sox."""
    high_pass = ["sinc", str(cutoff_hz)] if cutoff_hz else []
    completed = subprocess.run(
        ["sox", "-D", "-t", "raw", "-r", str(rate), "-e", "signed-integer", "-b", "16", "-c", "1", "-", "-n",
         *high_pass, "trim", "0.1", "0.8", "stats"],
        input=pcm, capture_output=True, check=True,
    )
    line = next(line for line in completed.stderr.decode().splitlines() if line.startswith("RMS lev dB"))
    value = line.split()[-1]
    return -math.inf if value == "-inf" else float(value)


def test_twilio_mu_law_wav_decodes_sample_for_sample_like_sox(utterances, phone_calls) -> None:
    audio = decode_recording(phone_calls[LIBRIVOX])

    assert audio.source_encoding == "wav/pcm_mulaw"
    assert audio.sample_rate == 8000
    assert audio.duration_seconds == pytest.approx(7.1, abs=0.001)
    assert audio.samples == _sox_pcm(phone_calls[LIBRIVOX])


def test_a_law_wav_decodes_like_sox(utterances) -> None:
    data = speech_corpus.telephone_wav(utterances[LIBRIVOX], encoding="a-law")
    audio = decode_recording(data)

    assert (audio.source_encoding, audio.sample_rate) == ("wav/pcm_alaw", 8000)
    assert audio.samples == _sox_pcm(data)


def test_pcm_16khz_stereo_wav_is_mixed_to_mono_at_its_own_rate(utterances) -> None:
    data = speech_corpus.telephone_wav(utterances[LIBRIVOX], encoding="signed-integer", rate=16000, channels=2)
    audio = decode_recording(data)

    assert (audio.source_encoding, audio.sample_rate) == ("wav/pcm_s16le", 16000)
    assert audio.duration_seconds == pytest.approx(7.1, abs=0.001)
    assert audio.samples == _sox_pcm(data)  # both channels are the same, so the mix is that channel
    assert to_model_input(audio) == audio.samples  # already at the model's rate: untouched


def test_float_wav_goes_through_ffmpeg(utterances) -> None:
    completed = subprocess.run(
        ["sox", "-D", "-V1", str(utterances[LIBRIVOX].source), "-t", "wav", "-e", "floating-point", "-b", "32", "-", "rate", "8000"],
        capture_output=True, check=True,
    )
    audio = decode_recording(completed.stdout)

    assert (audio.source_encoding, audio.sample_rate) == ("wav/pcm_f32le", 8000)
    assert audio.duration_seconds == pytest.approx(7.1, abs=0.001)


def test_mp3_is_decoded_by_ffmpeg(utterances) -> None:
    audio = decode_recording(speech_corpus.telephone_mp3(utterances[LIBRIVOX]))

    assert (audio.source_encoding, audio.sample_rate) == ("mp3", 8000)
    # MP3 frames pad the end (and the encoder adds a delay), so a little more than 7.1 s.
    assert 7.1 <= audio.duration_seconds < 7.5


def test_8khz_is_resampled_to_16khz_without_images_above_4khz() -> None:
    tone = decode_recording(_wav(1, 1, 8000, 16, _tone(1000, 8000, 1.0)))
    upsampled = to_model_input(tone, 16000)

    assert len(upsampled) == 2 * len(tone.samples)
    # A 1 kHz tone has no business above 4 kHz. Naive interpolation (pydub's set_frame_rate)
    # leaves an image at 7 kHz about 30 dB down, which the model hears; we need it gone.
    assert _rms_db_above(upsampled, 16000, 4300) < _rms_db_above(upsampled, 16000) - 70


def test_resampling_is_repeatable(phone_calls) -> None:
    audio = decode_recording(phone_calls[LIBRIVOX])

    assert to_model_input(audio) == to_model_input(audio)


def test_a_zero_byte_recording_is_an_error() -> None:
    with pytest.raises(AudioError, match="empty"):
        decode_recording(b"")


@pytest.mark.parametrize(
    "data",
    [
        b"<html><body>404 Not Found</body></html>" * 20,  # an error page saved as the recording
        bytes(range(256)) * 40,
        b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00",  # a WAV cut off inside its header
        b"RIFF\x04\x00\x00\x00WAVE",  # a WAV with no chunks at all
    ],
    ids=["html", "binary-noise", "truncated-header", "no-chunks"],
)
def test_bytes_that_are_not_audio_are_an_error(data: bytes) -> None:
    with pytest.raises(AudioError):
        decode_recording(data)


def test_a_wav_with_no_samples_is_empty_audio_not_an_error() -> None:
    audio = decode_recording(_wav(7, 1, 8000, 8, b""))

    assert audio.duration_seconds == 0
    assert to_model_input(audio) == b""


def test_a_streamed_wav_with_an_unknown_length_keeps_what_is_there() -> None:
    frames = _tone(440, 8000, 0.5)
    audio = decode_recording(_wav(1, 1, 8000, 16, frames, data_size=0xFFFFFFFF))

    assert audio.samples == frames
    assert audio.duration_seconds == 0.5
