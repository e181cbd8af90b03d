"""The form parameters Twilio sends with each kind of voice webhook."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from math import ceil

API_VERSION = "2010-04-01"

# What Twilio puts in From/Caller when the caller withholds their number (country "LS").
WITHHELD_NUMBER = "+266696687"

# Geographic lookup Twilio attaches to a number. UK numbers come with an empty city/state/zip.
_GEO_BY_PREFIX = [
    (WITHHELD_NUMBER, {"Country": "LS", "City": "", "State": "", "Zip": ""}),
    ("+44", {"Country": "GB", "City": "", "State": "", "Zip": ""}),
    ("+353", {"Country": "IE", "City": "", "State": "", "Zip": ""}),
    ("+1", {"Country": "US", "City": "SAN FRANCISCO", "State": "CA", "Zip": "94105"}),
]


def geo_for(number: str) -> dict[str, str]:
    for prefix, geo in _GEO_BY_PREFIX:
        if number.startswith(prefix):
            return dict(geo)
    return {"Country": "", "City": "", "State": "", "Zip": ""}


@dataclass
class CallIdentity:
    """Everything about a call that is the same in every webhook Twilio sends for it."""

    account_sid: str
    call_sid: str
    from_: str
    to: str
    caller_name: str | None = None
    forwarded_from: str | None = None
    application_sid: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def voice_params(self, call_status: str) -> dict[str, str]:
        """The standard TwiML voice request parameters (voice URL, actions, redirects)."""
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": self.call_sid,
            "CallStatus": call_status,
            "Direction": "inbound",
            "From": self.from_,
            "Caller": self.from_,
            "To": self.to,
            "Called": self.to,
        }
        for side, number in (("From", self.from_), ("Caller", self.from_), ("To", self.to), ("Called", self.to)):
            for key, value in geo_for(number).items():
                params[side + key] = value
        if self.caller_name is not None:
            params["CallerName"] = self.caller_name
        if self.forwarded_from is not None:
            params["ForwardedFrom"] = self.forwarded_from
        if self.application_sid is not None:
            params["ApplicationSid"] = self.application_sid
        params.update(self.extra)
        return params

    def status_params(self, call_duration: int, at: datetime, sequence_number: int = 0) -> dict[str, str]:
        """The phone number's status callback when the call has ended."""
        params = self.voice_params("completed")
        params.update(
            {
                "CallDuration": str(call_duration),
                "Duration": str(max(1, ceil(call_duration / 60))),  # billed minutes
                "Timestamp": format_datetime(at),
                "CallbackSource": "call-progress-events",
                "SequenceNumber": str(sequence_number),
            }
        )
        return params

    def recording_status_params(
        self,
        *,
        recording_sid: str,
        recording_url: str,
        status: str,
        duration: int | None,
        started_at: datetime,
        error_code: str = "0",
    ) -> dict[str, str]:
        """A <Record recordingStatusCallback> request: only these parameters, not the call's."""
        return {
            "AccountSid": self.account_sid,
            "CallSid": self.call_sid,
            "RecordingSid": recording_sid,
            "RecordingUrl": recording_url,
            "RecordingStatus": status,
            "RecordingDuration": "-1" if duration is None else str(duration),
            "RecordingChannels": "1",
            "RecordingSource": "RecordVerb",
            "RecordingStartTime": format_datetime(started_at),
            "ErrorCode": error_code,
        }
