"""What the simulator sends to the app and what came back."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

from .transport import TransportResponse

# Kinds of webhook, in the words of Twilio's documentation.
VOICE = "voice"  # the number's voice URL, when the call arrives
GATHER_ACTION = "gather-action"
RECORD_ACTION = "record-action"
DIAL_ACTION = "dial-action"  # <Dial action>: when the dialled call ends (or never started)
REDIRECT = "redirect"
RECORDING_STATUS = "recording-status"  # <Record recordingStatusCallback>
CALL_STATUS = "call-status"  # the number's status callback URL
MANUAL = "manual"  # sent by a test through call.post()

# Kinds Twilio sends without waiting for them to drive the call (deliverable out of order).
ASYNC_KINDS = (RECORDING_STATUS, CALL_STATUS, RECORD_ACTION, DIAL_ACTION)
# Actions that can arrive after the caller hung up: Twilio checks their TwiML but plays nothing.
AFTER_HANGUP_ACTIONS = (RECORD_ACTION, DIAL_ACTION)


@dataclass(frozen=True)
class Webhook:
    """One request Twilio makes. For GET, ``params`` travel in the query string of ``request_url``."""

    kind: str
    method: str
    url: str
    params: dict[str, str]
    token: str = field(default_factory=lambda: str(uuid.uuid4()))  # I-Twilio-Idempotency-Token, kept on retries

    @property
    def request_url(self) -> str:
        if self.method == "GET" and self.params:
            return self.url + ("&" if "?" in self.url else "?") + urlencode(self.params)
        return self.url

    @property
    def form(self) -> dict[str, str] | None:
        return dict(self.params) if self.method == "POST" else None


@dataclass(frozen=True)
class Exchange:
    """A webhook as delivered, and the app's answer."""

    webhook: Webhook
    response: TransportResponse | None  # None when the app could not be reached
    attempt: int = 1
    clock: float = 0.0  # seconds into the call
    error: str | None = None

    @property
    def kind(self) -> str:
        return self.webhook.kind

    @property
    def status(self) -> int | None:
        return self.response.status if self.response is not None else None

    @property
    def params(self) -> dict[str, str]:
        return self.webhook.params

    def describe(self) -> str:
        outcome = self.error or f"HTTP {self.status}"
        return f"{self.webhook.kind} {self.webhook.method} {self.webhook.url} -> {outcome}"
