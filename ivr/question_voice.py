"""A handler's question spoken by an offline voice (espeak-ng) instead of Twilio's <Say>, so the text never
goes to Twilio's speech service: only audio does. Synthesised per request, in memory (text in on a pipe,
never on a command line or on disk), as 8 kHz 16-bit mono WAV, which is what a phone call carries.

Twilio fetches the audio by GET, unsigned, so the URL itself is the credential: a short-lived token bound
to the call and the question it is putting (HMAC under the PIN key). The endpoint (ivr/views.py) also
checks that the call is still going and still putting that question.
"""
from __future__ import annotations

import hmac
import io
import subprocess
import time
import wave

from storage.crypto import keyed_digest

TOKEN_SECONDS = 120  # Twilio fetches a <Play> within moments of reading the TwiML
SAMPLE_RATE = 8000
VOICE = "en-gb"
WORDS_PER_MINUTE = 130  # slower than espeak's 175: a question is heard once or twice, by someone frightened
SYNTHESIS_TIMEOUT = 20


class SynthesisFailed(Exception):
    pass


def _mac(pin_key: str, call_id: int, question_id: int, expires: int) -> str:
    return keyed_digest(pin_key, "question-audio", f"{call_id}:{question_id}:{expires}").hex()[:32]


def audio_path(pin_key: str, call_id: int, question_id: int, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + TOKEN_SECONDS)
    return f"/ivr/question-audio/{call_id}/{question_id}/{expires}/{_mac(pin_key, call_id, question_id, expires)}"


def token_is_valid(pin_key: str, call_id: int, question_id: int, expires: int, mac: str,
                   now: float | None = None) -> bool:
    if expires < (time.time() if now is None else now) or expires > (time.time() if now is None else now) + TOKEN_SECONDS:
        return False
    return hmac.compare_digest(_mac(pin_key, call_id, question_id, expires), mac)


def synthesise(text: str) -> bytes:
    """The text spoken slowly, as WAV bytes. Raises SynthesisFailed (never with the text in the message)."""
    try:
        speech = subprocess.run(["espeak-ng", "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "--stdin", "--stdout"],
                                input=text.encode("utf-8"), capture_output=True, timeout=SYNTHESIS_TIMEOUT, check=True)
        # sox resamples to the phone's rate; raw out, because a WAV header written to a pipe has no length.
        pcm = subprocess.run(["sox", "-q", "-t", "wav", "-", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
                              "-e", "signed-integer", "-t", "raw", "-"],
                             input=speech.stdout, capture_output=True, timeout=SYNTHESIS_TIMEOUT, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        raise SynthesisFailed(type(error).__name__) from None
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm.stdout)
    return out.getvalue()
