"""The calls we make to Twilio's REST API: fetch a recording, delete it, list the account's recordings
and call records, delete a call's record.

Errors name no SID, URL or response body: their messages reach job rows (last_error), `jobs retry` and
the logs, which must hold no Twilio id of an anonymous call (storage/anonymity.py). What they say is
what was asked and Twilio's status code; the job and its take or call are named by our own ids.
"""
from __future__ import annotations

import logging
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


class CallNotFinal(TwilioUnavailable):
    """Twilio will not delete a call's record yet (error 20009): the call is not final. Try again later:
    Twilio advises a minute after the call ends, and in rare cases it takes up to 14 days."""


NOT_FINAL = 20009  # Twilio's "Cannot delete this resource before it is complete"


class TwilioRest:
    """auth: HTTP basic auth, either an API key's (SID, secret), which the workers should use, or the
    account's (SID, auth token) (Settings.twilio_rest_auth)."""

    def __init__(self, api_base: str, account_sid: str, auth: tuple[str, str], timeout: float = 30.0):
        self.api_base = api_base.rstrip("/")
        self.account_sid = account_sid
        self._auth = auth
        self.timeout = timeout
        self._http = requests.Session()
        # urllib3 logs each request line, SIDs and all, at DEBUG: not from the connections that carry ours.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.WARNING)

    def recording_url(self, recording_sid: str) -> str:
        return recording_url(self.api_base, self.account_sid, recording_sid)

    def call_url(self, call_sid: str) -> str:
        return f"{self.api_base}/{API_VERSION}/Accounts/{self.account_sid}/Calls/{call_sid}.json"

    def download_recording(self, recording_sid: str) -> bytes:
        # Always asked for by SID at our configured API base: a URL from a request is never fetched.
        url = self.recording_url(recording_sid) + ".wav"
        response = self._request("GET", url, "download a recording")
        if response.status_code == 404:
            raise RecordingGone("the recording is not at Twilio")
        self._raise_for_status(response, "download a recording")
        if not response.content:
            raise TwilioUnavailable("Twilio returned an empty body for the recording")
        return response.content

    def delete_recording(self, recording_sid: str) -> None:
        response = self._request("DELETE", self.recording_url(recording_sid) + ".json", "delete a recording")
        if response.status_code == 404:
            return  # already gone: what we wanted
        self._raise_for_status(response, "delete a recording")

    def delete_call(self, call_sid: str) -> None:
        """Delete Twilio's record of a call (the caller's number is in it). CallNotFinal while Twilio
        refuses because the call is not final; a record already gone (404) is what we wanted."""
        response = self._request("DELETE", self.call_url(call_sid), "delete a call's record")
        if response.status_code == 404:
            return
        if response.status_code in (400, 409) and _error_code(response) == NOT_FINAL:
            raise CallNotFinal("Twilio will not delete the call's record yet: the call is not yet final (error 20009)")
        self._raise_for_status(response, "delete a call's record")

    def list_recordings(self, page_size: int = 100, max_pages: int = 1000) -> Iterator[dict]:
        """Every recording the account holds (Twilio's resource dicts), following next_page_uri. A next
        page is only ever this account's recording list at our configured API base: the credentials
        are never sent anywhere a response points to."""
        return self._list("Recordings", "recordings", "recording", page_size, max_pages)

    def list_calls(self, page_size: int = 100, max_pages: int = 1000) -> Iterator[dict]:
        """Every call record the account holds (Twilio's resource dicts), paged as list_recordings."""
        return self._list("Calls", "calls", "call", page_size, max_pages)

    def _list(self, name: str, key: str, noun: str, page_size: int, max_pages: int) -> Iterator[dict]:
        prefix = f"/{API_VERSION}/Accounts/{self.account_sid}/{name}.json"
        path = f"{prefix}?PageSize={page_size}"
        for _ in range(max_pages):
            response = self._request("GET", self.api_base + path, f"list the {key}")
            if response.status_code >= 400:
                raise TwilioUnavailable(f"Twilio answered {response.status_code} to list {key}")
            try:
                page = response.json()
                items, path = page[key], page.get("next_page_uri")
                if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                raise TwilioUnavailable(f"Twilio's list of {key} was not the JSON expected") from None
            yield from items
            if not path:
                return
            if not isinstance(path, str) or not path.startswith(prefix + "?") or any(c in path for c in "\\#\r\n"):
                raise TwilioUnavailable(f"Twilio's next page of {key} is not this account's {noun} list")
        raise TwilioUnavailable(f"Twilio's list of {key} ran past {max_pages} pages")

    def _request(self, method: str, url: str, action: str) -> requests.Response:
        try:
            return self._http.request(method, url, auth=self._auth, timeout=self.timeout)
        except requests.RequestException as error:  # its message would quote the URL, SID and all
            raise TwilioUnavailable(f"could not reach Twilio to {action}: {type(error).__name__}") from None

    @staticmethod
    def _raise_for_status(response: requests.Response, action: str) -> None:
        if response.status_code >= 400:
            raise TwilioUnavailable(f"Twilio answered {response.status_code} to {action}")


def _error_code(response: requests.Response) -> int | None:
    """Twilio's error code from a JSON error body (its `code`), or None."""
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None
