"""Property: no signed webhook, however mangled, makes the hotline fail (issue 8, "Zero webhook errors").

Hypothesis builds a realistic request for every webhook step (each menu step, the recording action,
the recording status and call status callbacks), then mutates it: values replaced (other scripts'
digits, trailing newlines, NULs, bidi controls, numbers past every integer type, huge strings), keys
dropped, repeated or added, query strings changed, paths that are not ours. Every request is signed
exactly as Twilio signs it (tests.support.webhooks.SignedTwilio, twilio's RequestValidator), so each
one passes the signature check and reaches the parser. For every request:

- no 5xx, and only the answers a webhook may give (200 TwiML, 204, 400, 404 and 413 for a body over
  MAX_CONTENT_LENGTH; 403 only where the path itself was percent-encoded, which Twilio never requests);
- a refused request (4xx) leaves every table exactly as it was, row for row;
- an accepted one stored only values Twilio sends (whole-match ids, allow-listed statuses, bounded
  durations, this account's recording URLs);
- nothing is logged at ERROR or above and no record carries a traceback (so nothing failed inside a
  step either: the caller would hear the apology, but the failure logs at ERROR), and the caller's
  number is never logged.

Sizes: 10,000 requests on SQLite, about 90 s on this shared two-core machine (60 s of CPU); 1,000 on
PostgreSQL (about 20 s), where every query is a round trip and the parser under test is the same.
Requests depend on what earlier ones stored (a handful of CallSids and RecordingSids are reused so
later steps find calls and takes), so a failure may be reported as flaky when replayed: read the
sub-exceptions. Deterministic for CI: derandomize=True (the same requests every run), no example
database, no deadline.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, Phase, given, settings as hypothesis_settings, strategies as st
from sqlalchemy import delete, select
from werkzeug.datastructures import MultiDict

from ivr.flow import CallFlow
from jobs.twilio_rest import recording_url
from storage.models import Base, Call, Recording
from tests.conftest import ACCOUNT_SID
from tests.support.tables import table_contents
from tests.support.webhooks import SignedTwilio, call_params, check_twiml

REQUESTS = {"sqlite": 10_000, "postgresql": 1_000}
CALLER = "+447700900123"
CALLER_DIGITS = "7700900123"


def _sid(prefix: str, number: int) -> str:
    return prefix + hashlib.sha256(f"{prefix}{number}".encode()).hexdigest()[:32]


# A few calls and takes, reused, so requests land on calls and takes earlier requests created.
CALL_SIDS = [_sid("CA", n) for n in range(6)]
RECORDING_SIDS = [_sid("RE", n) for n in range(6)]

DIGITS_BY_STEP = {
    "voice": [None],
    "welcome": ["1", "2", "3", "0", "*", "9", None],
    "anonymity": ["1", "2", "3", None],
    "contact": ["1", "2", None],
    "contact-number": ["07700900111", "07700900111#", "123", None],
    "contact-confirm": ["1", "2", None],
    "category": ["1", "3", "5", "7", None],
    "recorded": ["#", "*", "hangup", "1", None],
    "after-recording": ["1", "2", "3", None],
    "reference": ["12345674", "1234", None],
    "pin": ["1234", "0000", "12*", None],
    "read-back": ["1", "2", None],
    "help": ["1", "2", "*", None],
    "handover-ended": [None],
    # questions (issue 9): a handler's question, after an unlock
    "question": ["1", "2", "3", "*", None],
    "answer-recorded": ["#", "*", "hangup", None],
    "after-answer": ["1", "2", "3", None],
    "after-questions": ["1", "2", None],
}
# Every step; the recording steps and the callbacks, whose numbers and statuses are parsed, twice.
ENDPOINTS = [*CallFlow.STEPS, "recorded", "recording-status", "recording-status", "status", "status"]

# Values a parser might mishandle, by kind: numbers (not numbers, numbers no integer type holds, other
# scripts' digits), ids (one character off, a trailing newline), statuses Twilio never sends, and for any
# field line breaks (ASCII and Unicode), controls, bidi overrides and markup.
NUMBERS = [
    "", " ", "abc", "--5", "-0", "+5", "-1", "-2", "0", "1e3", "0x10", "1_000", " 5", "5 ", "5\n", "\n5", "5\x00",
    "²", "٣", "५", "５", "①", "Ⅻ", "𝟕", "1.5", "NaN", "inf", "9" * 10, "3000000000", "2147483648", "-2147483649",
    "9223372036854775808", "9" * 20, "9" * 400, "9" * 5000, "86400", "86401", "600", "10", "11", "99", "100",
]
IDS = [
    _sid("CA", 0).upper(), _sid("CA", 0)[:-1], _sid("CA", 0) + "0", _sid("CA", 0) + "\n", _sid("CA", 0) + "\r\n",
    "CA" + "g" * 32, "CA" + "٣" * 32, "ca" + _sid("CA", 0)[2:], " " + _sid("CA", 0), _sid("RE", 0) + "\n",
    "RE" + "٣" * 32, "re" + _sid("RE", 0)[2:], _sid("RE", 0)[:-1], "RE" + "0" * 32 + "\u200b", "RE", "CA",
    "AC" + "0" * 31 + "1", "AC" + "0" * 31 + "1\n", "ac" + "0" * 31 + "1", *CALL_SIDS[:2], *RECORDING_SIDS[:2],
]
STATUSES = [
    "", "completed", "completed\n", "COMPLETED", "complete", " completed", "in-progress", "ringing", "queued",
    "busy", "no-answer", "canceled", "cancelled", "absent", "failed", "initiated", "paused", "deleted",
    "x" * 17, "in-progress" * 3, "completed\x00", "ｃompleted",
]
DIGIT_VALUES = ["hangup", "hangup\n", "HANGUP", "#", "*", "*#*#", "1" * 129, "1" * 128, "1\n", "١", "1 ", "12345674",
                "1234", "07700900111", "+447700900123", "1" * 16]
GENERAL = [
    "", " ", "\n", "\r\n", "\x00", "\u2028", "\x85", "\u202e", "\u200b", "\ufeff", "\ufffd", "None", "null",
    "true", "[]", "{}", "' OR 1=1 --", "<Say>hi</Say>", "]]>", "%0A", "\\n", "😀", "https://attacker.example/x",
    "http://127.0.0.1/", "+447700900123", "+266696687", "anonymous", "+٤٤٧٧٠٠٩٠٠١٢٣", "+4477009001234567890",
]
ODD_VALUES = NUMBERS + IDS + STATUSES + DIGIT_VALUES + GENERAL
HUGE = ["x" * 10_000, "9" * 60_000, "é" * 40_000, "x" * 70_000]  # the last ones pass MAX_CONTENT_LENGTH (64 KiB)
EXTRA_KEYS = ["Digits", "RecordingSid", "RecordingUrl", "RecordingDuration", "RecordingStatus", "CallStatus",
              "CallSid", "AccountSid", "From", "Caller", "SpeechResult", "Confidence", "ErrorCode", "bodySHA256",
              "", " ", "\n", "CallSid\n", "callsid", "Digits[]", "__proto__", "é", "\u202e", "x" * 300]
ODD_PATHS = ["teleport", "VOICE", "Welcome", "welcome.json", "status-callback", "recording_status", "x" * 200]
ENCODED_PATHS = ["welcome%0A", "x%0D%0Ainjected", "%E2%80%AE", "welcome%00", "voice%2F..", "%F0%9F%98%80"]
RAW_QUERIES = ["try=2&try=3", "try=", "try", "take=", "take", "=", "&&&", "try=1&", "%ZZ", "try=%ZZ", "a=b;c",
               "try=+1", "try=1.0", "take=" + RECORDING_SIDS[0] + "&take=" + RECORDING_SIDS[1], "bodySHA256=abc"]

value_text = st.text(max_size=40)  # any Unicode but lone surrogates, which no HTTP client can send
odd_values = st.one_of(
    st.sampled_from(ODD_VALUES), value_text, st.integers().map(str),
    st.builds(lambda s, e: s + e, st.sampled_from(ODD_VALUES), st.sampled_from(ODD_VALUES)),
)
_kind_values = {
    "number": st.one_of(st.sampled_from(NUMBERS), st.integers().map(str)),
    "id": st.sampled_from(IDS),
    "status": st.sampled_from(STATUSES),
    "digits": st.one_of(st.sampled_from(DIGIT_VALUES), st.text(alphabet="0123456789*#", max_size=140)),
}
KIND_OF_KEY = {
    "RecordingDuration": "number", "try": "number", "CallDuration": "number", "CallSid": "id", "RecordingSid": "id",
    "AccountSid": "id", "take": "id", "CallStatus": "status", "RecordingStatus": "status", "Digits": "digits",
    "From": "digits", "DialCallStatus": "status",
}
# The fields the hotline reads: most mutations aim at these.
READ_KEYS = {"CallSid", "AccountSid", "Digits", "From", "CallStatus", "RecordingSid", "RecordingUrl",
             "RecordingDuration", "RecordingStatus", "DialCallStatus"}


def _odd_value_for(draw, key: str) -> str:
    kind = KIND_OF_KEY.get(key)
    if kind is not None and draw(st.integers(0, 3)) > 0:
        return draw(_kind_values[kind])
    return draw(odd_values)


@dataclass
class Webhook:
    endpoint: str
    form: list[tuple[str, str]]
    query: list[tuple[str, str]] = field(default_factory=list)
    raw_query: str | None = None
    path: str | None = None  # a path that is not one of ours
    encoded_path: bool = False

    @property
    def url_path(self) -> str:
        path = f"/ivr/{self.path or self.endpoint}"
        query = self.raw_query if self.raw_query is not None else urlencode(self.query)
        return path + (f"?{query}" if query else "")

    @property
    def is_callback(self) -> bool:
        return self.endpoint in ("recording-status", "status") and self.path is None


def _base_request(draw, api_base: str) -> Webhook:
    endpoint = draw(st.sampled_from(ENDPOINTS))
    call_sid = draw(st.sampled_from(CALL_SIDS))
    recording_sid = draw(st.sampled_from(RECORDING_SIDS))
    url = recording_url(api_base, ACCOUNT_SID, recording_sid)
    query: list[tuple[str, str]] = []
    if endpoint == "recording-status":
        form = {"AccountSid": ACCOUNT_SID, "CallSid": call_sid, "RecordingSid": recording_sid, "RecordingUrl": url,
                "RecordingStatus": draw(st.sampled_from(["completed", "absent", "in-progress", "failed"])),
                "RecordingDuration": draw(st.sampled_from(["3", "-1", "600"])), "RecordingChannels": "1",
                "RecordingSource": "RecordVerb", "ErrorCode": "0"}
    elif endpoint == "status":
        status = draw(st.sampled_from(["completed", "completed", "busy", "no-answer", "canceled", "failed", "ringing"]))
        form = call_params(call_sid, caller=CALLER, CallStatus=status, CallDuration="40")
    else:
        digits = draw(st.sampled_from(DIGITS_BY_STEP[endpoint]))
        form = call_params(call_sid, caller=CALLER) if digits is None else call_params(call_sid, caller=CALLER, Digits=digits)
        if endpoint in ("recorded", "answer-recorded") and draw(st.booleans()):
            form.update(RecordingSid=recording_sid, RecordingUrl=url, RecordingDuration="3")
        if endpoint in ("after-recording", "after-answer"):
            query.append(("take", recording_sid))
        if endpoint == "handover-ended":
            form.update(DialCallStatus=draw(st.sampled_from(["completed", "no-answer", "busy", "failed", "canceled"])))
        attempt = draw(st.sampled_from([1, 1, 2, 3]))
        if attempt > 1:
            query.append(("try", str(attempt)))
    return Webhook(endpoint, list(form.items()), query)


def _mutate(draw, webhook: Webhook) -> None:
    kind = draw(st.sampled_from(["set"] * 4 + ["derive"] * 3 + ["drop", "duplicate", "add"] * 2
                                + ["query"] * 2 + ["raw-query", "huge", "path"]))
    form = webhook.form
    if kind in ("set", "derive", "drop", "duplicate", "huge") and not form:
        kind = "add"
    index = _aim(draw, form) if form else 0
    if kind == "set":
        form[index] = (form[index][0], _odd_value_for(draw, form[index][0]))
    elif kind == "derive":  # a small change to a good value: the hardest kind to catch
        key, value = form[index]
        change = draw(st.sampled_from(["suffix", "prefix", "upper", "shorter", "longer"]))
        odd = draw(st.sampled_from(["\n", " ", "\x00", "0", "9", "²", "٣", "\u200b", "\u2028", "a", "-", "#"]))
        value = {"suffix": value + odd, "prefix": odd + value, "upper": value.upper(),
                 "shorter": value[:-1], "longer": value + value[-1:]}[change]
        form[index] = (key, value)
    elif kind == "drop":
        del form[index]
    elif kind == "duplicate":
        key, value = form[index]
        copy = value if draw(st.booleans()) else _odd_value_for(draw, key)
        form.insert(draw(st.integers(0, len(form))), (key, copy))
    elif kind == "add":
        key = draw(st.one_of(st.sampled_from(EXTRA_KEYS), value_text))
        form.append((key, _odd_value_for(draw, key)))
    elif kind == "huge":
        form[index] = (form[index][0], draw(st.sampled_from(HUGE)))
    elif kind == "query":
        key = draw(st.sampled_from(["try", "try", "take", "take", "Digits", "CallSid", "x", ""]))
        webhook.query = [pair for pair in webhook.query if pair[0] != key or draw(st.booleans())]
        good_take = key == "take" and draw(st.booleans())
        webhook.query.append((key, draw(st.sampled_from(RECORDING_SIDS)) if good_take else _odd_value_for(draw, key)))
    elif kind == "raw-query":
        webhook.raw_query = draw(st.sampled_from(RAW_QUERIES))
    else:
        encoded = draw(st.booleans())
        webhook.path = draw(st.sampled_from(ENCODED_PATHS if encoded else ODD_PATHS))
        webhook.encoded_path = webhook.encoded_path or encoded


def _aim(draw, form: list[tuple[str, str]]) -> int:
    """Which field to change: usually one the hotline reads."""
    read = [i for i, (key, _) in enumerate(form) if key in READ_KEYS]
    if read and draw(st.integers(0, 3)) > 0:
        return draw(st.sampled_from(read))
    return draw(st.integers(0, len(form) - 1))


def webhooks(api_base: str):
    @st.composite
    def build(draw) -> Webhook:
        webhook = _base_request(draw, api_base)
        for _ in range(draw(st.integers(0, 4))):  # 0: a well-formed request, to move the calls along
            _mutate(draw, webhook)
        return webhook

    return build()


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# What the webhooks write; emptied now and then so that comparing every table stays cheap.
WRITTEN_BY_WEBHOOKS = {"jobs", "recordings", "sealed_items", "sealed_blobs", "calls", "cases", "reference_locks",
                       "reference_failure_hours", "unlock_failure_hours"}


def _empty_webhook_tables(db) -> None:
    with db.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name in WRITTEN_BY_WEBHOOKS:
                connection.execute(delete(table))


CALL_STATUSES = {"in-progress", "completed", "busy", "failed", "no-answer", "canceled"}
RECORDING_STATUSES = {"pending", "completed", "absent", "failed"}


def _stored_values_are_twilios(db, api_base: str) -> None:
    """What an accepted request stored is what Twilio sends: whole-match ids, allow-listed statuses,
    bounded numbers, this account's recording URLs."""
    with db.session() as session:
        for call_sid, status in session.execute(select(Call.call_sid, Call.status)):
            assert re.fullmatch(r"CA[0-9a-f]{32}", call_sid) and status in CALL_STATUSES, (call_sid, status)
        for sid, call_sid, duration, status, url in session.execute(select(
                Recording.recording_sid, Recording.call_sid, Recording.duration_seconds, Recording.twilio_status,
                Recording.recording_url)):
            assert re.fullmatch(r"RE[0-9a-f]{32}", sid) and re.fullmatch(r"CA[0-9a-f]{32}", call_sid), (sid, call_sid)
            assert duration is None or 0 <= duration <= 86_400, duration
            assert status in RECORDING_STATUSES, status
            assert url in (None, recording_url(api_base, ACCOUNT_SID, sid), recording_url(api_base, ACCOUNT_SID, sid) + ".wav")


@pytest.fixture
def settings(settings):
    # Every mutated call comes "from" a handful of numbers: without this the per-caller limit (tested in
    # tests/ivr/test_limits.py) would answer most voice webhooks before the flow ever saw them.
    return settings.with_overrides(caller_limit=0, withheld_limit=0)


def test_no_signed_mutated_webhook_makes_the_hotline_fail(app, hotline, settings, database_url):
    dialect = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    twilio = SignedTwilio(app.test_client(), settings.twilio_auth_token)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: an escaped exception would be a 500
    logs = Records()
    logging.getLogger().addHandler(logs)
    sent: list[int] = []
    outcomes: dict[int, int] = {}
    last_seen: list[dict] = []  # the tables as the last request left them

    @hypothesis_settings(
        max_examples=REQUESTS[dialect], derandomize=True, database=None, deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(webhook=webhooks(settings.twilio_api_base))
    def one_request(webhook: Webhook) -> None:
        before = last_seen[0] if last_seen else table_contents(hotline.db)  # the last request's "after"
        last_seen.clear()
        if sum(len(rows) for rows in before.values()) > 300:
            _empty_webhook_tables(hotline.db)
            before = table_contents(hotline.db)
        logs.records.clear()
        response = twilio.post(webhook.url_path, MultiDict(webhook.form))
        sent.append(1)
        status = response.status_code
        outcomes[status] = outcomes.get(status, 0) + 1
        assert status < 500, webhook
        allowed = {400, 404, 413} | ({403} if webhook.encoded_path else set())
        allowed |= {204} if webhook.is_callback else ({200} if webhook.path is None else set())
        assert status in allowed, (status, webhook)
        if status == 200:
            assert response.mimetype == "text/xml"
            check_twiml(response.get_data(as_text=True))
        after = table_contents(hotline.db)
        if status >= 400:
            assert after == before, webhook
        else:
            _stored_values_are_twilios(hotline.db, settings.twilio_api_base)
        last_seen.append(after)
        for record in logs.records:
            message = record.getMessage()
            assert record.levelno < logging.ERROR, (message, webhook)
            assert record.exc_info is None and record.stack_info is None, (message, webhook)
            assert "Traceback" not in message and CALLER_DIGITS not in message, (message, webhook)

    started = time.monotonic()
    try:
        one_request()
    finally:
        logging.getLogger().removeHandler(logs)
    elapsed = time.monotonic() - started
    print(f"\n{len(sent)} signed, mutated webhooks on {dialect} in {elapsed:.0f} s; answers {sorted(outcomes.items())}")
    assert len(sent) >= REQUESTS[dialect]
    assert {200, 204, 400, 404, 413} <= set(outcomes)  # the requests reached every kind of answer
