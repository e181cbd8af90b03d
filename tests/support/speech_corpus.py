"""Real recorded speech with known transcripts, turned into telephone-quality audio.

Tests and benchmarks need speech whose words are known. Debian's `pocketsphinx-testdata`
ships a few real recordings (LibriVox audiobook sentences, spoken card names, digits) with
reference transcripts; this module reads them and renders them the way a call reaches us
through Twilio: 8 kHz, mu-law, telephone band. It needs `sox` and is not used in production.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

POCKETSPHINX_TEST_DATA = Path("/usr/share/pocketsphinx/test/data")

# What a phone line passes: the classic 300-3400 Hz voice band, sampled at 8 kHz.
TELEPHONE_BAND_HZ = (300, 3400)
TELEPHONE_RATE = 8000

# The .raw files carry no header. Read as 16 kHz 16-bit mono their lengths give sensible
# durations and the model hears exactly the expected words; at 8 kHz it hears nonsense.
RAW_RATE = 16000
_RAW_PCM = ["-t", "raw", "-r", str(RAW_RATE), "-e", "signed-integer", "-b", "16", "-c", "1"]

WavEncoding = Literal["mu-law", "a-law", "signed-integer"]


class CorpusUnavailable(RuntimeError):
    """The test speech or the tool that renders it is not installed."""


@dataclass(frozen=True)
class Utterance:
    id: str
    reference: str  # lowercase words, as the corpus spells them
    source: Path  # a 16 kHz 16-bit mono WAV, or a headerless .raw of the same format

    @property
    def is_raw(self) -> bool:
        return self.source.suffix == ".raw"


def _reference_lines(path: Path) -> dict[str, str]:
    """Parse sphinx transcription lines: `<s> words </s> (utterance-id)`."""
    references: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\(([^()]+)\)\s*", line)
        if match:
            references[match.group(2)] = " ".join(match.group(1).split())
    return references


def load_utterances(data_dir: Path = POCKETSPHINX_TEST_DATA) -> list[Utterance]:
    """Every utterance in the corpus whose reference transcript ships alongside it."""
    if not (data_dir / "librivox" / "transcription").is_file():
        raise CorpusUnavailable(
            f"no test speech under {data_dir}: install it with `apt-get install pocketsphinx-testdata`"
        )
    utterances: list[Utterance] = []
    for folder, transcript in (("librivox", "transcription"), ("cards", "cards.transcription")):
        for utterance_id, words in _reference_lines(data_dir / folder / transcript).items():
            utterances.append(Utterance(f"{folder}/{utterance_id}", words, data_dir / folder / f"{utterance_id}.wav"))
    # These two have no transcription file: goforward.raw is the sentence its grammar
    # (goforward.gram) accepts, and TIDIGITS names each file by the digits spoken (z = zero).
    utterances.append(Utterance("goforward", "go forward ten meters", data_dir / "goforward.raw"))
    utterances.append(Utterance("tidigits/dhd.2934z", "two nine three four zero", data_dir / "tidigits" / "dhd.2934z.raw"))
    return [utterance for utterance in utterances if utterance.source.is_file()]


def _sox(
    input_args: Sequence[str], source: Path | bytes, output_args: Sequence[str], effects: Sequence[str]
) -> bytes:
    """Run sox on a file or on bytes (given as stdin) and return what it writes."""
    if shutil.which("sox") is None:
        raise CorpusUnavailable("sox is not installed: `apt-get install sox`")
    from_stdin = isinstance(source, bytes)
    # -D: sox otherwise dithers its output with fresh noise each run, and the same utterance
    # must make the same bytes for a test to be repeatable.
    command = ["sox", "-V1", "-D", *input_args, "-" if from_stdin else str(source), *output_args, "-", *effects]
    completed = subprocess.run(command, input=source if from_stdin else None, capture_output=True, check=False)
    if completed.returncode != 0:
        what = "audio from memory" if from_stdin else str(source)
        raise CorpusUnavailable(f"sox failed on {what}: {completed.stderr.decode(errors='replace').strip()}")
    return completed.stdout


def _input_args(utterance: Utterance) -> list[str]:
    return _RAW_PCM if utterance.is_raw else []


def wideband_wav(utterance: Utterance, speed: float = 1.0) -> bytes:
    """The utterance as recorded: 16 kHz 16-bit mono WAV (`speed` as for telephone_wav)."""
    effects = ["speed", str(speed), "rate", "-v", str(RAW_RATE)] if speed != 1.0 else []
    return _sox(_input_args(utterance), utterance.source, ["-t", "wav", "-e", "signed-integer", "-b", "16"], effects)


def _telephone_effects(rate: int, channels: int, speed: float) -> list[str]:
    low, high = TELEPHONE_BAND_HZ
    effects = ["speed", str(speed)] if speed != 1.0 else []
    return effects + ["sinc", f"{low}-{high}", "rate", "-v", str(rate), "channels", str(channels)]


def telephone_wav(
    utterance: Utterance,
    encoding: WavEncoding = "mu-law",
    rate: int = TELEPHONE_RATE,
    channels: int = 1,
    speed: float = 1.0,
) -> bytes:
    """The utterance as a phone call delivers it: band-limited to 300-3400 Hz, 8 kHz, mu-law WAV.

    `encoding`, `rate` and `channels` make the odd variants a recording might also arrive in.
    `speed` != 1 plays it faster or slower (pitch moves too), a stand-in for another speaker
    that multiplies the little real speech there is when comparing audio paths.
    """
    bits = 16 if encoding == "signed-integer" else 8
    output = ["-t", "wav", "-e", encoding, "-b", str(bits)]
    return _sox(_input_args(utterance), utterance.source, output, _telephone_effects(rate, channels, speed))


def telephone_call(utterances: Sequence[Utterance], gap_seconds: float = 0.5) -> bytes:
    """Several utterances one after another with silence between, as one mu-law call recording."""
    silence = bytes(int(RAW_RATE * gap_seconds) * 2)
    pieces: list[bytes] = []
    for utterance in utterances:
        pieces += [_sox(_input_args(utterance), utterance.source, _RAW_PCM, []), silence]
    output = ["-t", "wav", "-e", "mu-law", "-b", "8"]
    return _sox(_RAW_PCM, b"".join(pieces), output, _telephone_effects(TELEPHONE_RATE, 1, 1.0))


def telephone_mp3(utterance: Utterance) -> bytes:
    """Telephone-band speech as a 32 kbit/s MP3 (sox's default at 8 kHz, 8 kbit/s, garbles speech)."""
    return _sox(_input_args(utterance), utterance.source, ["-t", "mp3", "-C", "32"], _telephone_effects(TELEPHONE_RATE, 1, 1.0))


def normalise_words(text: str) -> str:
    """Lowercase words without punctuation or Vosk's `[unk]`, the form word error rate is scored on."""
    text = text.lower().replace("[unk]", " ")
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text).split())


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word error rate: all errors over all reference words (not a mean of per-utterance rates)."""
    import jiwer  # a development dependency; only tests and benchmarks score transcripts

    return float(jiwer.wer([normalise_words(r) for r in references], [normalise_words(h) or "" for h in hypotheses]))
