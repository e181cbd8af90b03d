"""Twilio's request signature, checked against the URL Twilio was given (PUBLIC_BASE_URL), not the
one a proxy in front of us hands to Flask."""
from __future__ import annotations

import hmac

from flask import Request
from twilio.request_validator import RequestValidator


def twilio_signature_is_valid(request: Request, public_base_url: str, auth_token: str) -> bool:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    url = public_base_url.rstrip("/") + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    validator = RequestValidator(auth_token)
    # Twilio signs the URL exactly as it was given: one HMAC answers nearly every genuine request.
    # validate() always computes two (the URL with and without a port, for Twilio's older signing), so
    # it is asked only when the first does not match: the same requests pass, at half the cost.
    if hmac.compare_digest(validator.compute_signature(url, request.form).encode(), signature.encode()):
        return True
    return validator.validate(url, request.form, signature)
