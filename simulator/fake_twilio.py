"""A stand-in for the parts of Twilio's REST API the hotline uses, served over real HTTP.

    with FakeTwilio(account_sid, auth_token) as twilio:
        sid, url = twilio.add_recording(wav_bytes)
        # point the app's TWILIO_API_BASE at twilio.api_base

Served (HTTP basic auth with the account SID and auth token, as Twilio requires):
    GET    /2010-04-01/Accounts/{AC}/Recordings/{RE}        the recording's WAV bytes
    GET    /2010-04-01/Accounts/{AC}/Recordings/{RE}.wav    the same
    GET    /2010-04-01/Accounts/{AC}/Recordings/{RE}.json   the recording resource (JSON)
    DELETE /2010-04-01/Accounts/{AC}/Recordings/{RE}.json   204, the recording is gone (also without .json)
    GET    /2010-04-01/Accounts/{AC}/Recordings.json        the account's recordings, newest first, a page
                                                            at a time (PageSize, default 50, at most 1000;
                                                            next_page_uri carries Page and PageToken;
                                                            optional CallSid filter), as Twilio pages lists
    GET    /2010-04-01/Accounts/{AC}/Calls.json             the account's call records not deleted, newest
                                                            first, paged the same way
    GET    /2010-04-01/Accounts/{AC}/Calls/{CA}.json        a call's record (the caller's number among it)
    DELETE /2010-04-01/Accounts/{AC}/Calls/{CA}.json        204, the record is gone; refused as Twilio does
                                                            (400, error 20009) until the call is final
Anything else answers 404 with a Twilio-style JSON error body. Every request is logged; faults and
delays can be injected for the next matching requests. All methods are thread-safe.

Twilio keeps a record of every call, the caller's number in it, until the account deletes it; it
refuses while the call is not final: until it has ended, for a while after (`call_final_after`
seconds here; about a minute at Twilio, in rare cases up to 14 days), and, here, while any recording
of the call still exists. The simulator's calls register themselves (`add_call`, `end_call`);
`calls` remembers every call seen, deleted or not.
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Callable, Pattern

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .audio import wav_info
from .errors import SimulatorError
from .sids import new_account_sid, new_auth_token, new_sid

API_VERSION = "2010-04-01"
_RECORDING_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>AC[0-9A-Za-z]+)/Recordings/(?P<sid>RE[0-9A-Za-z]+)(?P<ext>\.wav|\.mp3|\.json)?$"
)

_LIST_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9A-Za-z]+)/(?P<list>Recordings|Calls)\.json$")
_CALL_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9A-Za-z]+)/Calls/(?P<sid>CA[0-9A-Za-z]+)(?P<ext>\.json)?$")
NOT_FINAL = 20009  # "Cannot delete this resource before it is complete"
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # the request log replaces werkzeug's access log
        pass


@dataclass
class FakeRecording:
    sid: str
    account_sid: str
    call_sid: str | None
    wav: bytes
    duration: int
    created_at: datetime
    status: str = "completed"
    channels: int = 1
    source: str = "RecordVerb"

    def resource(self, api_base: str) -> dict:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{self.sid}.json"
        stamp = format_datetime(self.created_at)
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "call_sid": self.call_sid,
            "conference_sid": None,
            "channels": self.channels,
            "date_created": stamp,
            "date_updated": stamp,
            "start_time": stamp,
            "duration": str(self.duration),
            "encryption_details": None,
            "error_code": None,
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "source": self.source,
            "status": self.status,
            "uri": uri,
            "media_url": f"{api_base}/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{self.sid}",
        }


@dataclass
class FakeCall:
    """Twilio's record of one call. `deleted` once the account deleted it (the record stays here, for tests)."""

    sid: str
    account_sid: str
    from_: str
    to: str
    started_at: datetime
    status: str = "in-progress"
    ended_at: datetime | None = None
    ended_monotonic: float | None = None
    final: bool = False  # made final by hand (make_final), whatever the time
    deleted: bool = False

    def resource(self) -> dict:
        started = format_datetime(self.started_at)
        ended = format_datetime(self.ended_at) if self.ended_at else None
        duration = None if self.ended_at is None else str(max(0, round((self.ended_at - self.started_at).total_seconds())))
        return {
            "account_sid": self.account_sid, "api_version": API_VERSION, "sid": self.sid, "direction": "inbound",
            "from": self.from_, "from_formatted": self.from_, "to": self.to, "to_formatted": self.to,
            "status": self.status, "start_time": started, "end_time": ended, "duration": duration,
            "date_created": started, "date_updated": ended or started, "parent_call_sid": None, "price": None,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json",
        }


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    status: int
    at: float  # time.time() when the response was sent
    monotonic: float
    authenticated: bool
    recording_sid: str | None
    injected: bool = False  # the status came from fail_next()
    call_sid: str | None = None  # for requests about a call's record

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}{' (injected)' if self.injected else ''}"


@dataclass
class _Fault:
    method: str
    match: Callable[[str], bool]
    status: int | None
    delay: float
    remaining: int
    body: str | None


def _matcher(pattern: str | Pattern[str]) -> Callable[[str], bool]:
    if isinstance(pattern, re.Pattern):
        return lambda path: pattern.search(path) is not None
    return lambda path: pattern in path


class FakeTwilio:
    def __init__(self, account_sid: str | None = None, auth_token: str | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 call_final_after: float = 0.0):
        self.account_sid = account_sid or new_account_sid()
        self.auth_token = auth_token or new_auth_token()
        self.call_final_after = call_final_after  # seconds after a call ended before its record may be deleted
        self._host, self._port = host, port
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._recordings: dict[str, FakeRecording] = {}
        self._deleted: list[str] = []
        self._calls: dict[str, FakeCall] = {}
        self._deleted_calls: list[str] = []
        self._log: list[LoggedRequest] = []
        self._faults: list[_Fault] = []
        self._server = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "FakeTwilio":
        if self._server is None:
            self._server = make_server(self._host, self._port, self._wsgi, threaded=True, request_handler=_QuietHandler)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-twilio", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> "FakeTwilio":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def api_base(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeTwilio is not running; use it as a context manager or call start()")
        return f"http://{self._host}:{self._server.server_port}"

    # -- recordings ------------------------------------------------------------------------------

    def recording_url(self, sid: str) -> str:
        """Like Twilio's RecordingUrl: no file extension."""
        return f"{self.api_base}/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{sid}"

    def add_recording(self, wav: bytes, *, call_sid: str | None = None, sid: str | None = None, duration: int | None = None,
                      created_at: datetime | None = None, status: str = "completed") -> tuple[str, str]:
        """Store a finished recording; returns (RecordingSid, RecordingUrl). Any bytes may be served
        (mu-law, MP3, garbage: what the app must cope with); only PCM WAV gets a measured duration.
        `created_at` back-dates it (its date_created); `status` is what the list and resource say."""
        sid = sid or new_sid("RE")
        if duration is None:
            try:
                duration = round(wav_info(wav).duration)
            except SimulatorError:
                duration = 0
        recording = FakeRecording(sid, self.account_sid, call_sid, bytes(wav), duration,
                                  created_at or datetime.now(timezone.utc), status=status)
        with self._lock:
            self._recordings[sid] = recording
            self._changed.notify_all()
        return sid, self.recording_url(sid)

    @property
    def recordings(self) -> dict[str, FakeRecording]:
        """A snapshot of the recordings that still exist, by SID."""
        with self._lock:
            return dict(self._recordings)

    @property
    def deleted(self) -> list[str]:
        """SIDs deleted through the API, in order."""
        with self._lock:
            return list(self._deleted)

    # -- call records ----------------------------------------------------------------------------

    def add_call(self, sid: str | None = None, *, from_: str = "+447700900123", to: str = "+448000850000",
                 started_at: datetime | None = None) -> str:
        """A call arrives: Twilio opens its record of it (in progress). Returns the CallSid.
        `started_at` back-dates it (its start_time)."""
        sid = sid or new_sid("CA")
        with self._lock:
            self._calls[sid] = FakeCall(sid, self.account_sid, from_, to, started_at or datetime.now(timezone.utc))
            self._changed.notify_all()
        return sid

    def end_call(self, sid: str, status: str = "completed", *, ended_at: datetime | None = None) -> None:
        """The call ends; its record becomes final `call_final_after` seconds later. `ended_at`
        back-dates its end_time (not when it becomes final)."""
        with self._lock:
            call = self._calls[sid]
            if call.ended_at is None:
                call.ended_at, call.ended_monotonic = ended_at or datetime.now(timezone.utc), time.monotonic()
            call.status = status
            self._changed.notify_all()

    def make_final(self, sid: str) -> None:
        """Skip Twilio's wait: the (ended) call's record may be deleted now."""
        with self._lock:
            self._calls[sid].final = True

    @property
    def calls(self) -> dict[str, FakeCall]:
        """Every call this fake has seen, by SID, those whose record was deleted included (`.deleted`)."""
        with self._lock:
            return {sid: FakeCall(**vars(call)) for sid, call in self._calls.items()}

    @property
    def deleted_calls(self) -> list[str]:
        """CallSids whose record was deleted through the API, in order."""
        with self._lock:
            return list(self._deleted_calls)

    def _not_final(self, call: FakeCall) -> str | None:
        """Why the call's record cannot be deleted yet, or None."""
        if call.ended_at is None:
            return "the call is in progress"
        if any(recording.call_sid == call.sid for recording in self._recordings.values()):
            return "a recording of the call still exists"
        if not call.final and time.monotonic() - call.ended_monotonic < self.call_final_after:
            return "the call is not yet final"
        return None

    # -- request log -----------------------------------------------------------------------------

    @property
    def log(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def requests(self, method: str | None = None, sid: str | None = None, *, call_sid: str | None = None) -> list[LoggedRequest]:
        return [
            entry for entry in self.log
            if (method is None or entry.method == method.upper()) and (sid is None or entry.recording_sid == sid)
            and (call_sid is None or entry.call_sid == call_sid)
        ]

    def wait_for(self, method: str, sid: str | None = None, *, status: int | None = None, timeout: float = 5.0) -> LoggedRequest:
        """Block until a matching request has been answered (for apps that work in the background)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for entry in self._log:
                    if entry.method == method.upper() and (sid is None or entry.recording_sid == sid) and (status is None or entry.status == status):
                        return entry
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {method} {sid or ''} reached FakeTwilio within {timeout} s; log: {[str(e) for e in self._log]}")
                self._changed.wait(left)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # -- fault injection -------------------------------------------------------------------------

    def fail_next(self, method: str, pattern: str | Pattern[str] = "", status: int = 500, times: int = 1, *, body: str | None = None, delay: float = 0.0) -> None:
        """The next ``times`` requests with ``method`` ("*" for any) whose path contains ``pattern``
        (a recording SID, a path fragment, or a compiled regex) get ``status`` instead of a real answer."""
        self._add_fault(method, pattern, status, delay, times, body)

    def delay_next(self, method: str, pattern: str | Pattern[str] = "", seconds: float = 1.0, times: int = 1) -> None:
        """The next ``times`` matching requests are answered normally, but ``seconds`` late."""
        self._add_fault(method, pattern, None, seconds, times, None)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add_fault(self, method, pattern, status, delay, times, body) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(_Fault(method.upper(), _matcher(pattern), status, delay, times, body))

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method in ("*", method) and fault.match(path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- HTTP ------------------------------------------------------------------------------------

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        match = _RECORDING_PATH.match(request.path)
        sid = match["sid"] if match else None
        call_match = _CALL_PATH.match(request.path)
        authenticated = self._authenticated(request)
        fault = self._take_fault(request.method, request.path)
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.status is not None:
            response = Response(fault.body or _error_body(fault.status, "Injected failure", request.path), fault.status, content_type="application/json")
        else:
            response = self._answer(request, match, authenticated, call_match)
        with self._lock:
            self._log.append(LoggedRequest(request.method, request.path, response.status_code, time.time(), time.monotonic(), authenticated, sid,
                                           bool(fault and fault.status is not None), call_match["sid"] if call_match else None))
            self._changed.notify_all()
        return response(environ, start_response)

    def _authenticated(self, request: Request) -> bool:
        auth = request.authorization
        return bool(auth and auth.type == "basic" and auth.username == self.account_sid and auth.password == self.auth_token)

    def _answer(self, request: Request, match, authenticated: bool, call_match=None) -> Response:
        if not authenticated:
            response = _json_error(401, "Authenticate", request.path, code=20003)
            response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            return response
        if call_match is not None:
            return self._call_record(request, call_match)
        listing = _LIST_PATH.match(request.path)
        if listing is not None and request.method in ("GET", "HEAD"):
            if listing["account"] != self.account_sid:
                return _json_error(403, "Authenticated account does not own this resource", request.path, code=20003)
            if listing["list"] == "Calls":
                with self._lock:
                    found = [(c.started_at, c.sid, c) for c in self._calls.values() if not c.deleted]
                return self._list_page(request, "Calls", "calls", found, lambda call: call.resource())
            call_sid = request.args.get("CallSid")
            with self._lock:
                found = [(r.created_at, r.sid, r) for r in self._recordings.values() if call_sid is None or r.call_sid == call_sid]
            return self._list_page(request, "Recordings", "recordings", found, lambda r: r.resource(self.api_base),
                                   f"&CallSid={call_sid}" if call_sid else "")
        if match is None:
            return _json_error(404, f"The requested resource {request.path} was not found", request.path, code=20404)
        if match["account"] != self.account_sid:
            return _json_error(403, "Authenticated account does not own this resource", request.path, code=20003)
        sid, ext = match["sid"], match["ext"]
        with self._lock:
            recording = self._recordings.get(sid)
            if recording is None:
                return _json_error(404, f"The requested resource {request.path} was not found", request.path, code=20404)
            if request.method == "DELETE" and ext in (None, ".json"):
                del self._recordings[sid]
                self._deleted.append(sid)
                return Response(status=204)
        if request.method in ("GET", "HEAD"):
            if ext in (None, ".wav"):
                return Response(recording.wav, 200, content_type="audio/x-wav")
            if ext == ".json":
                return Response(json.dumps(recording.resource(self.api_base)), 200, content_type="application/json")
            return _json_error(415, "FakeTwilio only serves recordings as WAV", request.path, code=20415)
        return _json_error(405, f"Method {request.method} not allowed", request.path, code=20004)

    def _call_record(self, request: Request, match) -> Response:
        if match["account"] != self.account_sid:
            return _json_error(403, "Authenticated account does not own this resource", request.path, code=20003)
        with self._lock:
            call = self._calls.get(match["sid"])
            if call is None or call.deleted:
                return _json_error(404, f"The requested resource {request.path} was not found", request.path, code=20404)
            if request.method == "DELETE":
                if self._not_final(call) is not None:
                    return _json_error(400, "Cannot delete this resource before it is complete", request.path, code=NOT_FINAL)
                call.deleted = True
                self._deleted_calls.append(call.sid)
                self._changed.notify_all()
                return Response(status=204)
            if request.method in ("GET", "HEAD"):
                return Response(json.dumps(call.resource()), 200, content_type="application/json")
        return _json_error(405, f"Method {request.method} not allowed", request.path, code=20004)

    def _list_page(self, request: Request, name: str, key: str, found: list[tuple[datetime, str, object]],
                   resource: Callable[[object], dict], filters: str = "") -> Response:
        """One page of a list (Recordings or Calls), newest first. `found`: (when, sid, item) of every
        item listed. The PageToken names the last item of the page before, so items deleted while a
        client pages through do not make it skip any."""
        args = request.args
        try:
            size = int(args.get("PageSize", DEFAULT_PAGE_SIZE))
            page = int(args.get("Page", 0))
        except ValueError:
            return _json_error(400, "PageSize and Page must be integers", request.path, code=20001)
        if not 1 <= size <= MAX_PAGE_SIZE or page < 0:
            return _json_error(400, f"PageSize must be between 1 and {MAX_PAGE_SIZE}", request.path, code=20001)
        found = sorted(found, key=_newest_first)
        token = args.get("PageToken")
        if token:
            after = _token_key(token)
            if after is None:
                return _json_error(400, "Invalid PageToken", request.path, code=20001)
            found = [entry for entry in found if _newest_first(entry) > after]
        elif page:
            found = found[page * size:]
        chosen = found[:size]
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/{name}.json"
        start = page * size
        body = {
            key: [resource(item) for _, _, item in chosen],
            "page": page,
            "page_size": size,
            "start": start,
            "end": start + max(len(chosen) - 1, 0),
            "uri": f"{base}?PageSize={size}&Page={page}{filters}" + (f"&PageToken={token}" if token else ""),
            "first_page_uri": f"{base}?PageSize={size}&Page=0{filters}",
            "previous_page_uri": None if page == 0 else f"{base}?PageSize={size}&Page={page - 1}{filters}",
            "next_page_uri": (f"{base}?PageSize={size}&Page={page + 1}{filters}&PageToken={_page_token(chosen[-1])}"
                              if len(found) > size else None),
        }
        return Response(json.dumps(body), 200, content_type="application/json")


def _newest_first(entry: tuple[datetime, str, object]) -> tuple[int, str]:
    return (-_micros(entry[0]), entry[1])


def _micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)


def _page_token(entry: tuple[datetime, str, object]) -> str:
    return f"PA{_micros(entry[0])}_{entry[1]}"


def _token_key(token: str) -> tuple[int, str] | None:
    match = re.fullmatch(r"PA(?P<micros>-?[0-9]+)_(?P<sid>(RE|CA)[0-9a-f]{32})", token)
    if match is None:
        return None
    return (-int(match["micros"]), match["sid"])


def _error_body(status: int, message: str, path: str, code: int | None = None) -> str:
    code = code or 20000 + status
    return json.dumps({"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status})


def _json_error(status: int, message: str, path: str, code: int | None = None) -> Response:
    return Response(_error_body(status, message, path, code), status, content_type="application/json")
