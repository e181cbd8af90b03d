"""Speech to text with Vosk, offline: one model per process, one recognizer per recording."""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from transcription.audio import SAMPLE_WIDTH, decode_recording, to_model_input
from transcription.model import ModelError, ModelInfo, check_model

log = logging.getLogger(__name__)

# Bytes fed to the recognizer per call: 4000 frames, a quarter second at 16 kHz. Vosk's result
# does not depend on it; it only bounds how much audio is copied at once.
CHUNK_BYTES = 4000 * SAMPLE_WIDTH


@dataclass(frozen=True)
class Word:
    text: str
    start: float  # seconds from the start of the recording
    end: float
    confidence: float  # Vosk's posterior, 0..1
    # True for words a handler typed in a correction (console/transcripts.py); the machine's are False.
    corrected: bool = False


@dataclass(frozen=True)
class Transcript:
    text: str
    words: list[Word]
    model_name: str
    model_version: str
    seconds_taken: float  # wall-clock time of decoding + recognition (not the one-off model load)
    audio_seconds: float
    format_version: int = field(default=1)

    def to_json(self) -> bytes:
        document = asdict(self)
        for word in document["words"]:
            if not word["corrected"]:
                del word["corrected"]  # so the machine's transcripts are written exactly as before
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> "Transcript":
        try:
            raw: dict[str, Any] = json.loads(data)
            return cls(
                text=str(raw["text"]),
                words=[Word(str(w["text"]), float(w["start"]), float(w["end"]), float(w["confidence"]),
                            bool(w.get("corrected", False))) for w in raw["words"]],
                model_name=str(raw["model_name"]),
                model_version=str(raw["model_version"]),
                seconds_taken=float(raw["seconds_taken"]),
                audio_seconds=float(raw["audio_seconds"]),
                format_version=int(raw.get("format_version", 1)),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"not a stored transcript: {error!r}") from None


def _import_vosk() -> Any:
    import vosk

    vosk.SetLogLevel(-1)  # Kaldi logs every model load and decode to stderr otherwise
    return vosk


class Transcriber:
    """Transcribes PCM audio with one Vosk model, loaded on first use and shared by all threads.

    Loading takes seconds and some 300 MB, so a process holds one Transcriber. The model is
    read-only once loaded; each transcription gets its own recognizer, so calls may run in
    parallel threads (Vosk releases the GIL while it decodes).
    """

    def __init__(self, model_path: Path | str) -> None:
        self.info: ModelInfo = check_model(Path(model_path))
        if not self.info.deterministic:
            log.warning(
                "the Vosk model at %s dithers its features, so the same recording can transcribe differently; "
                "add --dither=0 to its conf/mfcc.conf for repeatable transcripts", self.info.path,
            )
        self._model: Any = None
        self._load_lock = threading.Lock()

    @property
    def sample_rate(self) -> int:
        """The rate the model computes features at; feed it audio at this rate or above."""
        return self.info.sample_rate

    def _loaded_model(self) -> Any:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    vosk = _import_vosk()
                    try:
                        self._model = vosk.Model(str(self.info.path))
                    except Exception as error:  # Vosk says only "Failed to create a model"
                        raise ModelError(f"Vosk could not load the model at {self.info.path}: {error}") from None
        return self._model

    def load(self) -> None:
        """Load the model now rather than on the first transcription (e.g. at worker start)."""
        self._loaded_model()

    def transcribe(self, pcm: bytes, sample_rate: int) -> Transcript:
        """Transcribe 16-bit mono little-endian PCM recorded at `sample_rate` Hz."""
        if sample_rate < self.sample_rate:
            # Vosk would refuse it; resampling first is both allowed and more accurate.
            raise ValueError(
                f"audio at {sample_rate} Hz is below the model's {self.sample_rate} Hz; "
                "resample it first (transcription.audio.to_model_input)"
            )
        if len(pcm) % SAMPLE_WIDTH:
            raise ValueError("PCM length is not a whole number of 16-bit samples")
        model = self._loaded_model()  # outside the timing: loading is once per process, not per call
        vosk = _import_vosk()
        started = time.perf_counter()
        recognizer = vosk.KaldiRecognizer(model, float(sample_rate))
        recognizer.SetWords(True)
        results: list[dict[str, Any]] = []
        view = memoryview(pcm)
        for offset in range(0, len(view), CHUNK_BYTES):
            if recognizer.AcceptWaveform(bytes(view[offset:offset + CHUNK_BYTES])):
                results.append(json.loads(recognizer.Result()))
        results.append(json.loads(recognizer.FinalResult()))

        words = [
            Word(item["word"], float(item["start"]), float(item["end"]), float(item.get("conf", 1.0)))
            for result in results
            for item in result.get("result", [])
        ]
        text = " ".join(result["text"] for result in results if result.get("text"))
        return Transcript(
            text=text,
            words=words,
            model_name=self.info.name,
            model_version=self.info.version,
            seconds_taken=time.perf_counter() - started,
            audio_seconds=len(pcm) / SAMPLE_WIDTH / sample_rate,
        )


def transcribe_recording(transcriber: Transcriber, wav_bytes: bytes) -> Transcript:
    """Transcribe a recording as fetched (any format ffmpeg reads); the whole pipeline a job runs.

    Raises AudioError for a recording that cannot be decoded (retrying will not help).
    """
    transcriber.load()  # not counted in seconds_taken
    started = time.perf_counter()
    audio = decode_recording(wav_bytes)
    transcript = transcriber.transcribe(to_model_input(audio, transcriber.sample_rate), transcriber.sample_rate)
    return replace(transcript, seconds_taken=time.perf_counter() - started, audio_seconds=audio.duration_seconds)
