"""The line's Prometheus metrics: what is counted, and the functions the rest of the line calls.

Every label comes from a fixed set written here or in the code (a step of CallFlow.STEPS, an endpoint
of the app's URL map, a JobKind, a status class), never from a request: no number, SID, reference or
path can reach a label, so none can reach the scrape. Anything unexpected is counted as "other".

Imports only prometheus-client, so any module may import this one without an import circle. Under
gunicorn, PROMETHEUS_MULTIPROC_DIR is set by gunicorn.conf.py before the workers import this module,
and each worker writes its counts to files there for the master to serve (observability.py).

What is read from the database at scrape time (queue depth, transcription backlog, failed jobs, unlock
failures this hour) is collected by observability.DatabaseCollector, not here.
"""
from __future__ import annotations

from prometheus_client import Counter, Histogram

REFUSAL_REASONS = ("caller", "withheld")  # ivr/limits.py: a number's own bucket, or the withheld numbers' one
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
JOB_OUTCOMES = ("done", "retry", "failed", "lost")  # lost: another worker took the job over
OTHER = "other"

# Webhooks answer in tens of milliseconds; Twilio gives up at 15 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
JOB_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
RTF_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)

webhook_seconds = Histogram(
    "hotline_webhook_seconds", "Time to answer one of Twilio's webhooks, by step of the call flow.",
    ["step"], buckets=LATENCY_BUCKETS)
responses = Counter(
    "hotline_http_responses", "Responses of the line's web app, by endpoint and status class.",
    ["endpoint", "status_class"])
webhook_failures = Counter(
    "hotline_webhook_failures", "Webhooks that failed inside the line (the caller heard the apology, or "
    "Twilio was told to retry a callback), by endpoint.", ["endpoint"])
job_runs = Counter("hotline_job_runs", "Job runs by kind and outcome.", ["kind", "outcome"])
job_seconds = Histogram("hotline_job_seconds", "Time one job run took, by kind.", ["kind"], buckets=JOB_BUCKETS)
transcriptions = Counter("hotline_transcriptions", "Takes transcribed by this line's workers.")
transcription_audio_seconds = Counter(
    "hotline_transcription_audio_seconds", "Seconds of audio transcribed.")
transcription_seconds = Counter(
    "hotline_transcription_seconds", "Seconds spent transcribing (recognition, without the model load).")
transcription_rtf = Histogram(
    "hotline_transcription_real_time_factor", "Seconds spent per second of audio, per transcription.",
    buckets=RTF_BUCKETS)
calls_refused = Counter(
    "hotline_calls_refused", "Calls refused by the per-caller limit, by which bucket was full.", ["reason"])
call_floods = Counter(
    "hotline_call_flood_alerts", "Times the total calls per minute crossed the flood threshold.")


def one_of(value: str | None, allowed) -> str:
    """value when it is one of the fixed set, else "other": a label never holds anything else."""
    return value if value in allowed else OTHER


def status_class(status: int) -> str:
    return one_of(f"{status // 100}xx", STATUS_CLASSES)


def call_refused(reason: str = "caller") -> None:
    """A call the per-caller limit refused (ivr/limits.py)."""
    calls_refused.labels(reason if reason in REFUSAL_REASONS else "caller").inc()


def call_flood_detected() -> None:
    """The calls per minute from all numbers crossed the flood threshold (ivr/limits.py)."""
    call_floods.inc()


def job_ran(kind: str, outcome: str, seconds: float, kinds) -> None:
    kind = one_of(kind, kinds)
    job_runs.labels(kind, one_of(outcome, JOB_OUTCOMES)).inc()
    job_seconds.labels(kind).observe(seconds)


def transcribed(audio_seconds: float, seconds_taken: float) -> None:
    if audio_seconds <= 0:
        return
    transcriptions.inc()
    transcription_audio_seconds.inc(audio_seconds)
    transcription_seconds.inc(max(seconds_taken, 0.0))
    transcription_rtf.observe(max(seconds_taken, 0.0) / audio_seconds)


# Every labelled series starts at zero, so a dashboard shows 0 rather than nothing before the first event.
for _reason in REFUSAL_REASONS:
    calls_refused.labels(_reason)


class TimedTranscriber:
    """A speech model that counts each transcription's audio and recognition time (the real-time
    factor); everything else is the model's own. The workers wrap theirs in it (jobs/worker.py)."""

    def __init__(self, inner):
        self.inner = inner

    def transcribe(self, pcm: bytes, sample_rate: int):
        transcript = self.inner.transcribe(pcm, sample_rate)
        transcribed(transcript.audio_seconds, transcript.seconds_taken)
        return transcript

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def timed(transcriber):
    """The transcriber, counted (once: wrapping twice would count twice); None stays None."""
    if transcriber is None or isinstance(transcriber, TimedTranscriber):
        return transcriber
    return TimedTranscriber(transcriber)
