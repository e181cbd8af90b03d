"""The per-caller limit: a number that calls too often is told so politely and hung up, without the line
ever keeping who called (a keyed hash under a key of the day, in memory or Redis, nothing in the
database or the log). Withheld numbers share a bucket; a flood from many numbers raises an alert."""
from __future__ import annotations

import logging
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from ivr import limits, prompts
from ivr.limits import Bucket, CallerLimit, FallbackCounter, LimitPolicy, MemoryCounter, RedisCounter
from simulator import WITHHELD_NUMBER, CallSimulator
from storage.models import Call
from tests.support.processes import RedisServer, free_port
from tests.support.webhooks import SignedTwilio, call_params, check_twiml, new_call_sid

CALLER = "+447700900123"
OTHER_CALLER = "+447700900456"
DAY = 24 * 3600


class Clock:
    def __init__(self, now: float = 1_780_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def policy(per_number=3, withheld=5, window=3600, flood=0) -> LimitPolicy:
    return LimitPolicy(per_number, withheld, window, flood)


def calls_from(limit: CallerLimit, number: str | None, count: int) -> list[bool]:
    return [limit.check(new_call_sid(), number).allowed for _ in range(count)]


# --- through the line --------------------------------------------------------------------------------

@pytest.fixture
def limited_app(settings):
    from app import create_app

    app = create_app(settings.with_overrides(caller_limit=3, withheld_limit=4, flood_calls_per_minute=0))
    yield app
    app.extensions["hotline"].db.dispose()


@pytest.fixture
def line(limited_app, settings, fake_twilio):
    return CallSimulator.for_flask_app(
        limited_app, public_base_url=settings.public_base_url, account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token, fake_twilio=fake_twilio,
    )


def _calls_stored(app) -> int:
    with app.extensions["hotline"].db.session() as session:
        return session.scalar(select(func.count()).select_from(Call))


def test_a_number_over_the_limit_hears_a_polite_message_and_is_hung_up(line, limited_app):
    for _ in range(3):
        assert line.dial(from_=CALLER).hears("immediate danger")
    stored = _calls_stored(limited_app)

    fourth = line.dial(from_=CALLER)
    assert fourth.hears(prompts.LIMIT_REACHED) and fourth.is_over and fourth.ended_by == "hotline"
    assert "999" in prompts.LIMIT_REACHED
    assert fourth.requests()[0].status == 200  # an answer, never an error Twilio would log
    # The refused call wrote nothing: its only row is the one its status callback leaves, so the job
    # that deletes Twilio's record of the call (and the number in it) still runs.
    assert _calls_stored(limited_app) == stored + 1
    assert line.dial(from_=OTHER_CALLER).hears("immediate danger")  # another number is not affected


def test_withheld_numbers_share_one_bucket_with_a_higher_limit(limited_app, settings):
    twilio = SignedTwilio(limited_app.test_client(), settings.twilio_auth_token)

    def voice(caller: str) -> str:
        return twilio.post("/ivr/voice", call_params(new_call_sid(), caller=caller)).get_data(as_text=True)

    # Twilio's stand-in number, a word, nothing at all: all one bucket, whose limit is 4.
    answers = [voice(caller) for caller in (WITHHELD_NUMBER, "Anonymous", "", "+7378742833", WITHHELD_NUMBER)]
    assert [prompts.LIMIT_REACHED in answer for answer in answers] == [False] * 4 + [True]
    check_twiml(answers[-1])
    assert prompts.LIMIT_REACHED not in voice(CALLER)


def test_a_retried_voice_webhook_is_counted_once(limited_app, settings):
    twilio = SignedTwilio(limited_app.test_client(), settings.twilio_auth_token)
    for _ in range(2):
        twilio.post("/ivr/voice", call_params(new_call_sid()))
    third = call_params(new_call_sid())
    answers = [twilio.post("/ivr/voice", third).get_data(as_text=True) for _ in range(3)]  # Twilio retrying
    assert not any(prompts.LIMIT_REACHED in answer for answer in answers)
    assert prompts.LIMIT_REACHED in twilio.post("/ivr/voice", call_params(new_call_sid())).get_data(as_text=True)


def test_the_number_is_in_no_log_and_no_row(line, limited_app, settings, captured_logs):
    for _ in range(5):
        call = line.dial(from_=CALLER)
        if not call.is_over:
            call.hangs_up()
    assert any("refused" in record.getMessage() for record in captured_logs.records)
    logged = "\n".join(record.getMessage() for record in captured_logs.records)
    assert CALLER not in logged and CALLER[1:] not in logged and CALLER[-6:] not in logged
    with limited_app.extensions["hotline"].db.engine.connect() as connection:
        values = [value for table in ("calls", "cases", "jobs")
                  for row in connection.exec_driver_sql(f"SELECT * FROM {table}") for value in row]
    # Any text holding the number's last digits; a number only whole (a row's random 64-bit id holds
    # some six digits or other one time in a few thousand).
    assert not [value for value in values if isinstance(value, (str, bytes))
                and CALLER[-6:] in (value if isinstance(value, str) else value.decode("latin-1"))]
    assert not [value for value in values if isinstance(value, int) and CALLER[1:] in str(value)]
    counter = limits.for_app(limited_app).counter
    assert not any(CALLER[-6:] in name for name in counter._entries)


def test_a_failing_limit_lets_the_call_through(limited_app, settings, monkeypatch, captured_logs):
    def broken(*_):
        raise RuntimeError("the counter broke")

    monkeypatch.setattr(limits.for_app(limited_app).counter, "count", broken)
    twilio = SignedTwilio(limited_app.test_client(), settings.twilio_auth_token)
    response = twilio.post("/ivr/voice", call_params(new_call_sid()))
    assert response.status_code == 200 and "immediate danger" in response.get_data(as_text=True)
    assert "RuntimeError" in captured_logs.text and "the counter broke" not in captured_logs.text


# --- the limit itself, in memory ---------------------------------------------------------------------

def test_calls_beyond_the_limit_are_refused_until_the_window_passes():
    clock = Clock()
    limit = CallerLimit(policy(per_number=3, window=3600), MemoryCounter(clock), clock)
    assert calls_from(limit, CALLER, 5) == [True, True, True, False, False]
    assert calls_from(limit, OTHER_CALLER, 1) == [True]
    clock.now += 3600
    assert calls_from(limit, CALLER, 1) == [True]


def test_no_limit_when_set_to_zero():
    limit = CallerLimit(policy(per_number=0, withheld=0), MemoryCounter())
    assert all(calls_from(limit, CALLER, 30)) and all(calls_from(limit, None, 30))


def test_the_key_is_made_for_the_day_and_yesterdays_is_forgotten():
    clock = Clock(now=1_780_000_000.0 - 1_780_000_000.0 % DAY + DAY - 60)  # a minute to midnight, UTC
    counter = MemoryCounter(clock)
    limit = CallerLimit(policy(per_number=2, window=24 * 3600), counter, clock)
    assert calls_from(limit, CALLER, 3) == [True, True, False]
    yesterday = dict(counter._keys)
    clock.now += 120
    assert calls_from(limit, CALLER, 1) == [True]  # a new key, so a new name: the count starts again
    assert counter._keys.keys() != yesterday.keys() and len(counter._keys) == 1
    assert list(counter._keys.values())[0] != list(yesterday.values())[0]
    assert len(list(yesterday.values())[0]) == 32  # random, 256 bits


def test_memory_stays_bounded_in_a_flood_of_distinct_numbers():
    clock = Clock()
    counter = MemoryCounter(clock, max_entries=500)
    limit = CallerLimit(policy(per_number=1, window=60), counter, clock)
    for n in range(3000):
        limit.check(new_call_sid(), f"+4477009{n:05d}")
        clock.now += 0.05
    assert len(counter._entries) <= 501  # the minute's total is always kept, so a flood is still seen
    assert limit.check(new_call_sid(), "+447700999999").calls_this_minute > 1


def test_a_flood_from_many_numbers_raises_one_alert_a_minute_and_a_metric(captured_logs):
    clock = Clock()
    limit = CallerLimit(policy(per_number=3, flood=20), MemoryCounter(clock), clock)
    before = REGISTRY.get_sample_value("hotline_call_flood_alerts_total") or 0.0
    for n in range(50):
        assert limit.check(new_call_sid(), f"+4477009{n:05d}").allowed  # a flood is answered, not refused
    alerts = [r for r in captured_logs.records if "flood" in r.getMessage()]
    assert len(alerts) == 1 and alerts[0].levelno == logging.WARNING
    assert "21 this minute" in alerts[0].getMessage()
    assert REGISTRY.get_sample_value("hotline_call_flood_alerts_total") == before + 1


def test_refusals_are_counted_by_bucket_in_the_metrics():
    def refused(reason: str) -> float:
        return REGISTRY.get_sample_value("hotline_calls_refused_total", {"reason": reason}) or 0.0

    before = refused("caller"), refused("withheld")
    limit = CallerLimit(policy(per_number=1, withheld=2), MemoryCounter())
    calls_from(limit, CALLER, 3)
    calls_from(limit, None, 3)
    assert (refused("caller"), refused("withheld")) == (before[0] + 2, before[1] + 1)


# --- in Redis ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


def test_web_processes_share_the_count_in_redis_and_everything_expires(redis_server, redis_client):
    first = CallerLimit(policy(per_number=3, window=600), RedisCounter(redis_server.url))
    second = CallerLimit(policy(per_number=3, window=600), RedisCounter(redis_server.url))
    assert calls_from(first, CALLER, 2) + calls_from(second, CALLER, 2) == [True, True, True, False]
    assert first.counter.day_key("x") == second.counter.day_key("x")  # one key of the day for all

    names = redis_client.keys("hotline:limit:*")
    assert names
    for name in names:
        ttl = redis_client.ttl(name)
        assert 0 < ttl <= (limits.DAY_KEY_SECONDS if b":key:" in name else 600)
        stored = name + (redis_client.get(name) or b"")
        assert CALLER[-6:].encode() not in stored and CALLER[1:].encode() not in stored


def test_a_retry_is_counted_once_in_redis(redis_server, redis_client):
    limit = CallerLimit(policy(per_number=1), RedisCounter(redis_server.url))
    sid = new_call_sid()
    assert [limit.check(sid, CALLER).allowed for _ in range(3)] == [True, True, True]
    assert not limit.check(new_call_sid(), CALLER).allowed


def test_with_redis_down_the_limit_counts_in_memory_and_answers_at_once(captured_logs):
    dead = RedisCounter(f"redis://127.0.0.1:{free_port()}/0")
    limit = CallerLimit(policy(per_number=2), FallbackCounter(dead, MemoryCounter()))
    started = time.monotonic()
    assert calls_from(limit, CALLER, 3) == [True, True, False]
    assert time.monotonic() - started < 1.5
    warnings = [r for r in captured_logs.records if "cannot reach Redis" in r.getMessage()]
    assert len(warnings) == 1


def test_the_line_counts_in_the_brokers_redis(settings, redis_server, redis_client):
    from app import create_app

    app = create_app(settings.with_overrides(broker_url=redis_server.url, worker_mode="off", caller_limit=1))
    try:
        twilio = SignedTwilio(app.test_client(), settings.twilio_auth_token)
        answers = [twilio.post("/ivr/voice", call_params(new_call_sid())).get_data(as_text=True) for _ in range(2)]
        assert prompts.LIMIT_REACHED not in answers[0] and prompts.LIMIT_REACHED in answers[1]
        assert redis_client.keys("hotline:limit:number:*")
        memory = create_app(settings.with_overrides(broker_url=redis_server.url, limit_store="memory"))
        assert isinstance(limits.for_app(memory).counter, MemoryCounter)
        memory.extensions["hotline"].db.dispose()
    finally:
        app.extensions["hotline"].db.dispose()


def test_a_redis_store_without_a_redis_broker_stops_the_start(settings_env):
    from settings import ConfigError, Settings

    with pytest.raises(ConfigError, match="HOTLINE_LIMIT_STORE=redis needs"):
        Settings.from_env(dict(settings_env, HOTLINE_LIMIT_STORE="redis"))
    limit = Settings.from_env(dict(settings_env, HOTLINE_CALLER_LIMIT="4", HOTLINE_WITHHELD_LIMIT="9"))
    assert LimitPolicy.from_settings(limit).limit(Bucket.NUMBER) == 4
    assert LimitPolicy.from_settings(limit).limit(Bucket.WITHHELD) == 9
