"""The calls we make to Twilio's REST API: fetch a recording, delete it, list the account's recordings.

Errors name the recording's SID at most; never a URL with credentials, never response bodies.
"""
from __future__ import annotations

from typing import Iterator

import requests

API_VERSION = "2010-04-01"


def recording_url(api_base: str, account_sid: str, recording_sid: str) -> str:
    """Where Twilio keeps a recording (its RecordingUrl, without a file extension)."""
    return f"{api_base.rstrip('/')}/{API_VERSION}/Accounts/{account_sid}/Recordings/{recording_sid}"


class TwilioUnavailable(Exception):
    """Worth trying again later: a network failure, a 5xx, rate limiting, or an empty body."""


class RecordingGone(Exception):
    """Twilio no longer has this recording (404): trying again will not bring it back."""


class TwilioRest:
    def __init__(self, api_base: str, account_sid: str, auth_token: str, timeout: float = 30.0):
        self.api_base = api_base.rstrip("/")
        self.account_sid = account_sid
        self._auth = (account_sid, auth_token)
        self.timeout = timeout
        self._http = requests.Session()

    def recording_url(self, recording_sid: str) -> str:
        return recording_url(self.api_base, self.account_sid, recording_sid)

    def download_recording(self, recording_sid: str) -> bytes:
        # Always asked for by SID at our configured API base: a URL from a request is never fetched.
        url = self.recording_url(recording_sid) + ".wav"
        response = self._request("GET", url, recording_sid)
        if response.status_code == 404:
            raise RecordingGone(f"recording {recording_sid} is not at Twilio")
        self._raise_for_status(response, "download", recording_sid)
        if not response.content:
            raise TwilioUnavailable(f"Twilio returned an empty body for recording {recording_sid}")
        return response.content

    def delete_recording(self, recording_sid: str) -> None:
        response = self._request("DELETE", self.recording_url(recording_sid) + ".json", recording_sid)
        if response.status_code == 404:
            return  # already gone: what we wanted
        self._raise_for_status(response, "delete", recording_sid)

    def list_recordings(self, page_size: int = 100, max_pages: int = 1000) -> Iterator[dict]:
        """Every recording the account holds (Twilio's resource dicts), following next_page_uri. A next
        page is only ever this account's recording list at our configured API base: the credentials
        are never sent anywhere a response points to."""
        prefix = f"/{API_VERSION}/Accounts/{self.account_sid}/Recordings.json"
        path = f"{prefix}?PageSize={page_size}"
        for _ in range(max_pages):
            response = self._request("GET", self.api_base + path, what="the list of recordings")
            if response.status_code >= 400:
                raise TwilioUnavailable(f"Twilio answered {response.status_code} to list recordings")
            try:
                page = response.json()
                recordings, path = page["recordings"], page.get("next_page_uri")
                if not isinstance(recordings, list) or not all(isinstance(r, dict) for r in recordings):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                raise TwilioUnavailable("Twilio's list of recordings was not the JSON expected") from None
            yield from recordings
            if not path:
                return
            if not isinstance(path, str) or not path.startswith(prefix + "?") or any(c in path for c in "\\#\r\n"):
                raise TwilioUnavailable("Twilio's next page of recordings is not this account's recording list")
        raise TwilioUnavailable(f"Twilio's list of recordings ran past {max_pages} pages")

    def _request(self, method: str, url: str, recording_sid: str | None = None, *, what: str | None = None) -> requests.Response:
        try:
            return self._http.request(method, url, auth=self._auth, timeout=self.timeout)
        except requests.RequestException as error:
            raise TwilioUnavailable(
                f"could not reach Twilio to {method.lower()} {what or f'recording {recording_sid}'}: {type(error).__name__}"
            ) from None

    @staticmethod
    def _raise_for_status(response: requests.Response, action: str, recording_sid: str) -> None:
        if response.status_code >= 400:
            raise TwilioUnavailable(f"Twilio answered {response.status_code} to {action} recording {recording_sid}")
