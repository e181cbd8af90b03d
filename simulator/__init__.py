"""Plays Twilio's part so developers and tests can call the hotline without a Twilio account.

Only Twilio is faked, at the HTTP boundary: webhooks signed exactly as Twilio signs them go to the
app (in-process through a Flask test client, or over HTTP), and the app's REST calls for recordings
go to FakeTwilio, a real HTTP server.
"""
from .audio import padded_wav, silence_wav, tone_wav, wav_info
from .call import DEFAULT_CALLER, DEFAULT_HOTLINE_NUMBER, CallSimulator, DialedCall, RecordingOutcome, SimulatedCall
from .errors import AppResponseError, SimulatorError, TwimlError
from .fake_twilio import FakeTwilio, LoggedRequest
from .params import WITHHELD_NUMBER
from .signing import SIGNATURE_HEADER, sign, signed_headers
from .transport import FlaskClientTransport, HttpTransport, TransportError, TransportResponse
from .twiml import Document, Verb, parse_twiml
from .webhooks import Exchange, Webhook

__all__ = [
    "AppResponseError", "CallSimulator", "DEFAULT_CALLER", "DEFAULT_HOTLINE_NUMBER", "DialedCall", "Document", "Exchange",
    "FakeTwilio", "FlaskClientTransport", "HttpTransport", "LoggedRequest", "RecordingOutcome", "SIGNATURE_HEADER",
    "SimulatedCall", "SimulatorError", "TransportError", "TransportResponse", "TwimlError", "Verb", "WITHHELD_NUMBER", "Webhook",
    "padded_wav", "parse_twiml", "sign", "signed_headers", "silence_wav", "tone_wav", "wav_info",
]
