"""Twilio's request signature, checked against the URL Twilio was given (PUBLIC_BASE_URL), not the
one a proxy in front of us hands to Flask."""
from __future__ import annotations

from flask import Request
from twilio.request_validator import RequestValidator


def twilio_signature_is_valid(request: Request, public_base_url: str, auth_token: str) -> bool:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    url = public_base_url.rstrip("/") + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    return RequestValidator(auth_token).validate(url, request.form, signature)
