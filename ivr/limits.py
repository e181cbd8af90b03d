"""The per-caller limit: how many calls one number may make to the free line in a short window.

The limit must not become a list of who called. So a number is never kept: it is turned into a keyed
hash (HMAC-SHA256, cut to 128 bits) under a random key made for the day (UTC), and only that hash counts
calls, in memory or in Redis, under an expiry of one window. The day's key lives only in this process's
memory, or in Redis with an expiry of a day and a half; once it is gone, yesterday's hashes cannot be
tied to any number, even by someone who holds a list of numbers to try. Nothing of this reaches the
database or a log: log lines say how many calls were refused, never whose.

Withheld numbers (Twilio sends a stand-in, a word or nothing) all share one bucket with a higher limit.
A flood from many numbers (all calls together over a threshold per minute) raises an alert: a log line
and a metric. The calls in a flood are still answered: a flood is for a person to look at, and refusing
everybody would do an attacker's work for them.

The limit never turns a caller away by failing: if Redis cannot be reached, counting falls back to this
process's memory for a while; any other failure lets the call through (and is logged by type only).
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Protocol

from ivr import prompts
from ivr.events import WITHHELD_STAND_INS
from ivr.reply import Hangup, Reply, Say

log = logging.getLogger("hotline.ivr.limits")

EXTENSION = "hotline.ivr.limits"  # the app's CallerLimit, in app.extensions
DAY_KEY_SECONDS = 36 * 3600  # a day's key outlives its day by the longest window, then goes
REDIS_TIMEOUT = 0.25  # seconds: a webhook must answer in well under Twilio's 15 s, Redis or not
REDIS_RETRY_SECONDS = 10.0  # after a Redis failure, count in memory this long before trying again
ALERT_INTERVAL = 60.0  # at most one flood alert (and one refusal summary) a minute
MAX_MEMORY_ENTRIES = 200_000  # counts kept in memory; a flood of distinct numbers cannot exhaust it
PURGE_INTERVAL = 5.0  # seconds between sweeps of expired counts once memory is full


class Bucket(str, enum.Enum):
    NUMBER = "number"  # one caller's own number
    WITHHELD = "withheld"  # every withheld number together


@dataclass(frozen=True)
class LimitPolicy:
    calls_per_number: int  # 0: no limit
    calls_withheld: int  # all withheld callers together
    window_seconds: int
    flood_calls_per_minute: int  # 0: no alert

    @classmethod
    def from_settings(cls, settings) -> "LimitPolicy":
        return cls(settings.caller_limit, settings.withheld_limit, settings.limit_window_seconds,
                   settings.flood_calls_per_minute)

    def limit(self, bucket: Bucket) -> int:
        return self.calls_withheld if bucket is Bucket.WITHHELD else self.calls_per_number


@dataclass(frozen=True)
class Decision:
    allowed: bool
    bucket: Bucket
    calls: int  # this bucket's calls in the window, this one included
    calls_this_minute: int  # everybody's


class Counter(Protocol):
    """Where counts live. Each method is safe with any number of threads (and, for Redis, processes)."""

    def day_key(self, day: str) -> bytes: ...

    def count(self, call: str, caller: str, minute: str, window_seconds: int) -> tuple[int, int]:
        """Count a call once (a retried webhook with the same call is not counted again): returns the
        caller's calls in the window and everybody's calls this minute."""
        ...


class MemoryCounter:
    """This process's memory. With several gunicorn workers each counts its own share of the calls, so
    the limit a caller meets is up to workers x the setting; Redis makes it exact."""

    def __init__(self, clock: Callable[[], float] = time.time, max_entries: int = MAX_MEMORY_ENTRIES):
        self.clock = clock
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}
        self._entries: dict[str, tuple[int, float]] = {}  # name -> (value, expires at)
        self._purged_at = float("-inf")

    def day_key(self, day: str) -> bytes:
        with self._lock:
            if day not in self._keys:
                self._keys = {day: secrets.token_bytes(32)}  # yesterday's key is dropped, not kept
            return self._keys[day]

    def count(self, call: str, caller: str, minute: str, window_seconds: int) -> tuple[int, int]:
        now = self.clock()
        with self._lock:
            if len(self._entries) >= self.max_entries and now - self._purged_at >= PURGE_INTERVAL:
                self._forget_expired(now)  # at most every few seconds: it walks every entry
                self._purged_at = now
            seen = self._live(call, now)
            if seen is not None:
                return seen, self._live(minute, now) or 0
            calls = self._bump(caller, now, window_seconds)
            if len(self._entries) < self.max_entries:  # when full, a retry may count twice: never refuse for it
                self._entries[call] = (calls, now + window_seconds)
            return calls, self._bump(minute, now, 120, always=True)  # one a minute: a flood is always seen

    def _live(self, name: str, now: float) -> int | None:
        entry = self._entries.get(name)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def _bump(self, name: str, now: float, ttl: float, always: bool = False) -> int:
        # When memory is full a new name is not kept: its call is let through (counted as the first),
        # never refused for want of room.
        value = (self._live(name, now) or 0) + 1
        expires = self._entries[name][1] if value > 1 else now + ttl
        if value > 1 or always or len(self._entries) < self.max_entries:
            self._entries[name] = (value, expires)
        return value

    def _forget_expired(self, now: float) -> None:
        self._entries = {name: entry for name, entry in self._entries.items() if entry[1] > now}


# One round trip per call: count the call once, the caller's window and everybody's minute.
_COUNT_SCRIPT = """
local seen = redis.call('GET', KEYS[1])
if seen then return {tonumber(seen), tonumber(redis.call('GET', KEYS[3]) or '0')} end
local calls = redis.call('INCR', KEYS[2])
if calls == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
redis.call('SET', KEYS[1], calls, 'EX', ARGV[1])
local total = redis.call('INCR', KEYS[3])
if total == 1 then redis.call('EXPIRE', KEYS[3], 120) end
return {calls, total}
"""


class RedisCounter:
    """Counts shared by every web process, in Redis; keys expire on their own."""

    PREFIX = "hotline:limit:"

    def __init__(self, url: str, client=None):
        if client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # No retries: one short timeout, then FallbackCounter counts in memory for a while.
            client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT,
                                          retry=Retry(NoBackoff(), 0))
        self.client = client
        self._script = client.register_script(_COUNT_SCRIPT)
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}

    def day_key(self, day: str) -> bytes:
        with self._lock:
            key = self._keys.get(day)
        if key is None:
            name = f"{self.PREFIX}key:{day}"
            # The first web process to need today's key makes it; the others read that one.
            self.client.set(name, secrets.token_bytes(32), nx=True, ex=DAY_KEY_SECONDS)
            key = self.client.get(name)
            if not key:
                raise RuntimeError("the day's key vanished from Redis")
            with self._lock:
                self._keys = {day: key}
        return key

    def count(self, call: str, caller: str, minute: str, window_seconds: int) -> tuple[int, int]:
        calls, total = self._script(keys=[self.PREFIX + call, self.PREFIX + caller, self.PREFIX + minute],
                                    args=[window_seconds])
        return int(calls), int(total)


class FallbackCounter:
    """Redis, and this process's memory while Redis cannot be reached: a Redis outage neither stops
    the limit nor slows every call by a timeout."""

    def __init__(self, primary: Counter, fallback: MemoryCounter, clock: Callable[[], float] = time.monotonic):
        self.primary, self.fallback, self.clock = primary, fallback, clock
        self._retry_at = 0.0

    def _use(self, method: str, *args):
        # The day's key and the counts may come from different places for a while: the key only names
        # the counts, so at worst a caller's count starts again when Redis comes back.
        if self.clock() >= self._retry_at:
            try:
                return getattr(self.primary, method)(*args)
            except Exception as error:
                self._retry_at = self.clock() + REDIS_RETRY_SECONDS  # one warning per retry interval
                log.warning("the call limit cannot reach Redis (%s); counting in this process for now",
                            type(error).__name__)
        return getattr(self.fallback, method)(*args)

    def day_key(self, day: str) -> bytes:
        return self._use("day_key", day)

    def count(self, call: str, caller: str, minute: str, window_seconds: int) -> tuple[int, int]:
        return self._use("count", call, caller, minute, window_seconds)


class _Summary:
    """A log line at most once a minute; the next one says how many events it stands for."""

    def __init__(self, interval: float = ALERT_INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.interval, self.clock = interval, clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._held = 0

    def due(self) -> int:
        """0 if this event is held back, else how many events (this one included) the line reports."""
        with self._lock:
            now = self.clock()
            self._held += 1
            if self._last is not None and now - self._last < self.interval:
                return 0
            held, self._held, self._last = self._held, 0, now
            return held


class CallerLimit:
    def __init__(self, policy: LimitPolicy, counter: Counter, clock: Callable[[], float] = time.time):
        self.policy = policy
        self.counter = counter
        self.clock = clock
        self._refusals = _Summary()
        self._floods = _Summary()

    def check(self, call_sid: str, caller_number: str | None) -> Decision:
        """Count this call against its caller and decide. caller_number is what Twilio sent as From,
        already checked to be a number (None when it was a word, junk or nothing: withheld)."""
        bucket = Bucket.WITHHELD if caller_number is None or caller_number in WITHHELD_STAND_INS else Bucket.NUMBER
        now = self.clock()
        day = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d")
        key = self.counter.day_key(day)
        window = int(now // self.policy.window_seconds)
        caller = "withheld" if bucket is Bucket.WITHHELD else _token(key, "caller", caller_number)
        calls, this_minute = self.counter.count(
            f"call:{_token(key, 'call', call_sid)}", f"{bucket.value}:{window}:{caller}", f"minute:{int(now // 60)}",
            self.policy.window_seconds,
        )
        limit = self.policy.limit(bucket)
        decision = Decision(allowed=limit == 0 or calls <= limit, bucket=bucket, calls=calls,
                            calls_this_minute=this_minute)
        self._report(decision)
        return decision

    def _report(self, decision: Decision) -> None:
        flood = self.policy.flood_calls_per_minute
        if flood and decision.calls_this_minute > flood:
            held = self._floods.due()
            if held:
                log.warning("ALERT: a flood of calls: %d this minute, over the alert threshold of %d a minute",
                            decision.calls_this_minute, flood)
                _metric("flood")
        if not decision.allowed:
            _metric("refused", decision.bucket)
            held = self._refusals.due()
            if held:
                log.warning("refused %d call(s) over the per-caller limit", held)


def _token(key: bytes, purpose: str, value: str) -> str:
    return hmac.new(key, f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()[:32]


def _metric(event: str, bucket: Bucket | None = None) -> None:
    """Tell the metrics (metrics.py, Prometheus) if they are there; the limit works without them."""
    try:
        import metrics  # noqa: PLC0415 - imported late: the limit must work in a process without it

        if event == "refused":
            metrics.call_refused("withheld" if bucket is Bucket.WITHHELD else "caller")
        else:
            metrics.call_flood_detected()
    except Exception:  # never let a metric turn a call away
        pass


# --- the webhook's side ---------------------------------------------------------------------------

def build(settings) -> CallerLimit:
    """The limit for a web process: Redis when the broker is Redis (unless told to use memory)."""
    from settings import REDIS_SCHEMES

    policy = LimitPolicy.from_settings(settings)
    url = settings.broker_url or ""
    memory = MemoryCounter()
    if settings.limit_store == "memory" or not url.startswith(REDIS_SCHEMES):
        return CallerLimit(policy, memory)
    return CallerLimit(policy, FallbackCounter(RedisCounter(url), memory))


_build_lock = threading.Lock()


def for_app(app) -> CallerLimit:
    limit = app.extensions.get(EXTENSION)
    if limit is None:
        with _build_lock:
            limit = app.extensions.get(EXTENSION)
            if limit is None:
                limit = app.extensions[EXTENSION] = build(app.extensions["hotline"].settings)
    return limit


def refusal(app, event) -> Reply | None:
    """The reply for a call over the limit, or None to answer it as usual. Never raises: a failure of
    the limit lets the call through."""
    try:
        decision = for_app(app).check(event.call_sid, event.caller_number)
    except Exception as error:
        log.error("the call limit failed with %s; the call is answered", type(error).__name__)
        return None
    if decision.allowed:
        return None
    return Reply.of(Say(prompts.LIMIT_REACHED), Hangup())
