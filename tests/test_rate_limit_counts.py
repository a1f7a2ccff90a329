"""Rate limits count in the shared cache (config/limits.py, config/cache.py):
exactly, however many requests race, in windows that lapse on their own, and
not at all when Redis does not answer."""

from __future__ import annotations

import threading

import pytest
import redis
from django.conf import settings
from django.core.cache import caches

from config.cache import count_event
from config.limits import Limit


def _count_racing(cache, key: str, *, threads: int, each: int) -> list[int]:
    counts: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        for _ in range(each):
            value = count_event(cache, key, timeout=60)
            with lock:
                counts.append(value)

    workers = [threading.Thread(target=hit) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return counts


def test_racing_requests_are_each_counted_once_in_memory():
    cache = caches["default"]
    cache.clear()

    counts = _count_racing(cache, "limit:test:race", threads=8, each=25)

    assert sorted(counts) == list(range(1, 201))


@pytest.mark.redis
def test_racing_requests_are_each_counted_once_in_redis_in_one_round_trip_each():
    cache = caches["default"]
    assert type(cache).__name__ == "RedisCache"
    cache.delete("limit:test:race")
    server = redis.Redis.from_url(settings.REDIS_URL)
    scripts_before = _lua_calls(server)

    counts = _count_racing(cache, "limit:test:race", threads=8, each=25)

    assert sorted(counts) == list(range(1, 201))
    key = cache.make_key("limit:test:race")
    assert 0 < server.ttl(key) <= 60  # the window's count lapses on its own
    assert int(server.get(key)) == 200
    assert _lua_calls(server) == scripts_before  # no script: a plain MULTI/EXEC


def _lua_calls(server: redis.Redis) -> int:
    stats = server.info("commandstats")
    return sum(stats.get(name, {}).get("calls", 0) for name in ("cmdstat_eval", "cmdstat_evalsha"))


def test_a_limit_refuses_past_its_rate_and_says_how_long_to_wait(settings):
    settings.THROTTLE_SIGNUP_RATE = "3/hour"
    limit = Limit("test-signups", "THROTTLE_SIGNUP_RATE")
    caches["default"].clear()

    answers = [limit.hit("203.0.113.9") for _ in range(4)]

    assert answers[:3] == [None, None, None]
    assert 1 <= answers[3] <= 3600
    assert limit.hit("203.0.113.10") is None  # another key counts apart


def test_with_redis_down_nothing_is_limited(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.1,
                "SOCKET_TIMEOUT": 0.1,
            },
        }
    }
    settings.THROTTLE_SIGNUP_RATE = "1/hour"
    limit = Limit("test-signups", "THROTTLE_SIGNUP_RATE")

    assert [limit.hit("203.0.113.9") for _ in range(3)] == [None, None, None]
