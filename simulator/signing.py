"""The one place that signs webhooks, exactly as Twilio does.

Twilio signs the full URL it requests (scheme, host, port if any, path and query string) followed
by every POST parameter name and value, sorted by name, with HMAC-SHA1 keyed by the account's auth
token, base64-encoded, in the X-Twilio-Signature header. For GET requests the parameters are in the
URL's query string and nothing is appended. We use twilio's own RequestValidator to compute it so the
simulator and the app can never disagree about the algorithm.
"""
from __future__ import annotations

from typing import Mapping

from twilio.request_validator import RequestValidator

SIGNATURE_HEADER = "X-Twilio-Signature"


def sign(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """The X-Twilio-Signature Twilio would send for a request to ``url`` with POST ``params``."""
    return RequestValidator(auth_token).compute_signature(url, dict(params or {}))


def signed_headers(
    auth_token: str,
    url: str,
    params: Mapping[str, str] | None = None,
    *,
    idempotency_token: str | None = None,
) -> dict[str, str]:
    """Headers of a Twilio webhook request: the signature plus what Twilio's proxy always sends."""
    headers = {
        SIGNATURE_HEADER: sign(auth_token, url, params),
        "User-Agent": "TwilioProxy/1.1",
        "Accept": "*/*",
        "X-Home-Region": "us1",
    }
    if idempotency_token:
        headers["I-Twilio-Idempotency-Token"] = idempotency_token
    return headers
