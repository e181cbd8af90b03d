"""How well and how fast we transcribe telephone audio.  Run: python -m benchmarks.transcription [--quick]

(a) word error rate of each way of getting 8 kHz phone audio to the 16 kHz model, and of the
    whole pipeline (transcribe_recording on the mu-law WAV bytes);
(b) real-time factor of the whole pipeline against raw Vosk decoding of the same audio;
(c) throughput of 1 and 2 worker processes;
(d) peak memory (RSS) of a worker.

Speech is the real recordings of pocketsphinx-testdata sent through a telephone channel
(tests/support/speech_corpus.py). The full run also plays them 10% slower and faster, a stand-in
for more speakers, because the corpus is only ~100 words and one word is 1% of WER.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from tests.support import speech_corpus
from transcription.audio import decode_recording, resample_pcm, to_model_input
from transcription.model import check_model, fetch_model
from transcription.recognizer import Transcriber, transcribe_recording

MODEL_RATE = 16000


@dataclass(frozen=True)
class Sample:
    reference: str
    phone_wav: bytes  # 8 kHz mu-law WAV, as Twilio sends
    wideband_wav: bytes  # the original 16 kHz recording


@dataclass(frozen=True)
class AudioPath:
    """One way of getting a phone recording to the model: which model conf, which PCM at which rate."""

    name: str
    conf_lines: tuple[str, ...]  # added to the model's conf/mfcc.conf ("" = the model as installed)
    model_input: Callable[[Sample], tuple[bytes, int]]


def _phone_pcm(sample: Sample) -> bytes:
    return decode_recording(sample.phone_wav).samples


def _sox_resample(sample: Sample) -> tuple[bytes, int]:
    completed = subprocess.run(
        ["sox", "-D", "-t", "raw", "-r", "8000", "-e", "signed-integer", "-b", "16", "-c", "1", "-",
         "-t", "raw", "-", "rate", "-v", str(MODEL_RATE)],
        input=_phone_pcm(sample), capture_output=True, check=True,
    )
    return completed.stdout, MODEL_RATE


def _pydub_resample(sample: Sample) -> tuple[bytes, int]:
    return decode_recording(sample.phone_wav).segment.set_frame_rate(MODEL_RATE).raw_data, MODEL_RATE


PATHS: tuple[AudioPath, ...] = (
    AudioPath("wideband 16 kHz original (not a phone; upper bound)", (),
              lambda s: (decode_recording(s.wideband_wav).samples, MODEL_RATE)),
    AudioPath("default: ffmpeg soxr resample to 16 kHz", (),
              lambda s: (to_model_input(decode_recording(s.phone_wav)), MODEL_RATE)),
    AudioPath("ffmpeg swr resample to 16 kHz", (),
              lambda s: (resample_pcm(_phone_pcm(s), 8000, MODEL_RATE, "aresample=resampler=swr"), MODEL_RATE)),
    AudioPath("sox rate -v resample to 16 kHz", (), _sox_resample),
    AudioPath("pydub set_frame_rate (audioop.ratecv)", (), _pydub_resample),
    AudioPath("8 kHz in, conf --allow-upsample (Kaldi resamples)", ("--allow-upsample=true",),
              lambda s: (_phone_pcm(s), 8000)),
    AudioPath("8 kHz in, conf --sample-frequency=8000 --high-freq=3800", ("--sample-frequency=8000", "--high-freq=3800"),
              lambda s: (_phone_pcm(s), 8000)),
    AudioPath("8 kHz in, model conf as shipped", (), lambda s: (_phone_pcm(s), 8000)),
)


def _variant_model(base: Path, conf_lines: Sequence[str], workspace: Path) -> Path:
    """A model that shares `base`'s files (symlinks) but has extra lines in conf/mfcc.conf."""
    variant = workspace / ("variant-" + "-".join(line.strip("-").replace("=", "") for line in conf_lines))
    variant.mkdir()
    for entry in base.iterdir():
        if entry.name != "conf":
            (variant / entry.name).symlink_to(entry.resolve())
    shutil.copytree(base / "conf", variant / "conf")
    with (variant / "conf" / "mfcc.conf").open("a") as conf:
        conf.write("".join(line + "\n" for line in conf_lines))
    return variant


def _raw_vosk(model: object, pcm: bytes, rate: int) -> str:
    """Decode with Vosk directly, the way Transcriber does, minus everything around it."""
    import json

    import vosk

    recognizer = vosk.KaldiRecognizer(model, float(rate))
    recognizer.SetWords(True)
    texts = []
    for offset in range(0, len(pcm), 8000):
        if recognizer.AcceptWaveform(pcm[offset:offset + 8000]):
            texts.append(json.loads(recognizer.Result())["text"])
    texts.append(json.loads(recognizer.FinalResult())["text"])
    return " ".join(text for text in texts if text)


def word_error_rates(model_path: Path, samples: Sequence[Sample], transcriber: Transcriber) -> None:
    import vosk

    vosk.SetLogLevel(-3)  # also silence Kaldi's ERROR lines for the audio it refuses; we count those
    references = [sample.reference for sample in samples]
    words = sum(len(reference.split()) for reference in references)
    print(f"\n(a) Word error rate, {len(samples)} utterances, {words} reference words (lower is better)")
    print(f"    {'audio path':58} {'WER':>7}  {'refused':>7}")
    with tempfile.TemporaryDirectory() as workspace:
        for path in PATHS:
            model_dir = _variant_model(model_path, path.conf_lines, Path(workspace)) if path.conf_lines else model_path
            try:
                model = vosk.Model(str(model_dir))
            except Exception:
                print(f"    {path.name:58} {'-':>7}  model refused to load")
                continue
            hypotheses, refused = [], 0
            for sample in samples:
                pcm, rate = path.model_input(sample)
                try:
                    hypotheses.append(_raw_vosk(model, pcm, rate))
                except Exception:  # Vosk refuses audio below the model's rate
                    hypotheses.append("")
                    refused += 1
            wer = speech_corpus.word_error_rate(references, hypotheses)
            print(f"    {path.name:58} {wer:7.1%}  {refused:>4}/{len(samples)}")
            del model
    hypotheses = [transcribe_recording(transcriber, sample.phone_wav).text for sample in samples]
    print(f"    {'whole pipeline: transcribe_recording(mu-law WAV bytes)':58} "
          f"{speech_corpus.word_error_rate(references, hypotheses):7.1%}")


def pipeline_speed(transcriber: Transcriber, call_wav: bytes, repeats: int) -> None:
    audio = decode_recording(call_wav)
    pcm = to_model_input(audio)
    model = transcriber._loaded_model()  # the same loaded model, so only the surroundings differ
    pipeline, raw, preparation = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        to_model_input(decode_recording(call_wav))
        preparation.append(time.perf_counter() - started)
        started = time.perf_counter()
        _raw_vosk(model, pcm, MODEL_RATE)
        raw.append(time.perf_counter() - started)
        started = time.perf_counter()
        transcribe_recording(transcriber, call_wav)
        pipeline.append(time.perf_counter() - started)
    seconds = audio.duration_seconds
    raw_median, pipeline_median = statistics.median(raw), statistics.median(pipeline)
    print(f"\n(b) Speed on one {seconds:.1f} s call, median of {repeats} (real-time factor = seconds taken / audio seconds)")
    print(f"    raw Vosk decoding of the 16 kHz PCM      {raw_median:6.2f} s   RTF {raw_median / seconds:.3f}")
    print(f"    decode + resample alone                  {statistics.median(preparation):6.3f} s")
    print(f"    whole pipeline (transcribe_recording)    {pipeline_median:6.2f} s   RTF {pipeline_median / seconds:.3f}")
    print(f"    pipeline overhead over raw Vosk          {pipeline_median / raw_median - 1:+7.1%}   (target <= +10%)")


def _worker(model_path: str, jobs: multiprocessing.Queue, results: multiprocessing.Queue, ready: multiprocessing.Barrier) -> None:
    transcriber = Transcriber(model_path)
    transcriber.load()
    loaded_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ready.wait()
    while (wav := jobs.get()) is not None:
        transcript = transcribe_recording(transcriber, wav)
        results.put(("done", transcript.audio_seconds))
    results.put(("rss", (loaded_rss_kib, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))


def throughput(model_path: Path, call_wav: bytes, jobs_count: int) -> None:
    context = multiprocessing.get_context("spawn")  # fresh processes, as a worker service starts them
    print(f"\n(c) Throughput, {jobs_count} copies of the call, on {os.cpu_count()} cores (model load not timed)")
    peak: list[tuple[int, int]] = []
    single = None
    for workers in (1, 2):
        jobs, results = context.Queue(), context.Queue()
        ready = context.Barrier(workers + 1)
        processes = [context.Process(target=_worker, args=(str(model_path), jobs, results, ready)) for _ in range(workers)]
        for process in processes:
            process.start()
        ready.wait()
        started = time.perf_counter()
        for _ in range(jobs_count):
            jobs.put(call_wav)
        for _ in processes:
            jobs.put(None)
        audio_seconds, finished = 0.0, 0
        while finished < len(processes):
            kind, value = results.get()
            if kind == "done":
                audio_seconds += value
            else:
                finished += 1
                peak.append(value)
        elapsed = time.perf_counter() - started
        for process in processes:
            process.join()
        rate = audio_seconds / elapsed
        single = single or rate
        print(f"    {workers} worker(s): {audio_seconds:6.0f} s of audio in {elapsed:5.1f} s = "
              f"{rate:5.1f} audio s per s ({rate / single:.2f}x one worker)")
    loaded = max(p[0] for p in peak) / 1024
    busy = max(p[1] for p in peak) / 1024
    print(f"\n(d) Peak RSS of a worker process: {loaded:.0f} MiB after loading the model, {busy:.0f} MiB after transcribing")


def _model_path(argument: str | None) -> Path:
    if argument or os.environ.get("VOSK_MODEL_PATH"):
        return Path(argument or os.environ["VOSK_MODEL_PATH"]).expanduser()
    cache = Path(os.environ.get("HOTLINE_TEST_DATA") or Path.home() / ".cache" / "hotline")
    return fetch_model(cache)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transcription", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one speed, fewer repeats and jobs (about 2 minutes)")
    parser.add_argument("--model", help="a Vosk model directory (default: $VOSK_MODEL_PATH, else the pinned model, fetched)")
    arguments = parser.parse_args(argv)
    speeds = (1.0,) if arguments.quick else (0.9, 1.0, 1.1)
    repeats, jobs_count = (3, 4) if arguments.quick else (5, 8)

    model_path = _model_path(arguments.model)
    info = check_model(model_path)
    print(f"model {info.name} {info.version} at {info.path} (deterministic: {info.deterministic})")
    utterances = speech_corpus.load_utterances()
    samples = [
        Sample(u.reference, speech_corpus.telephone_wav(u, speed=speed), speech_corpus.wideband_wav(u, speed=speed))
        for speed in speeds
        for u in utterances
    ]
    transcriber = Transcriber(model_path)
    transcriber.load()
    word_error_rates(model_path, samples, transcriber)
    call = speech_corpus.telephone_call(utterances)
    pipeline_speed(transcriber, call, repeats)
    throughput(model_path, call, jobs_count)


if __name__ == "__main__":
    main()
