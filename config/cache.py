"""The cache backends we use, timed: hits, misses and how long each call took.

The same classes as Django's local-memory cache and django-redis's, with each
call wrapped; settings.py swaps them in (the metrics block). django-prometheus's
own cache backends count hits and misses but time nothing (and its local-memory
one answers the default for a cached 0 or empty list), hence these.
"""

from __future__ import annotations

from time import perf_counter

from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache as DjangoLocMemCache
from django_redis.cache import RedisCache as DjangoRedisCache
from prometheus_client import Counter, Histogram
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

CACHE_SECONDS = Histogram(
    "parkspot_cache_operation_seconds",
    "Time taken by cache calls, by operation (get, set, …).",
    ["operation"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
CACHE_GETS = Counter(
    "parkspot_cache_gets",
    "Cache reads by result (hit or miss; Redis down is a miss). An availability answer "
    "a process kept from an earlier read is a hit too, though Redis is not asked.",
    ["result"],
)

_OPERATIONS = ("get", "set", "add", "delete", "get_many", "set_many", "incr", "touch")
_SECONDS = {operation: CACHE_SECONDS.labels(operation) for operation in _OPERATIONS}
_HIT = CACHE_GETS.labels("hit")
# For a cached value a process kept itself (reservations.selectors): still a hit.
KEPT_HIT = _HIT
_MISS = CACHE_GETS.labels("miss")
_ABSENT = object()


def count_event(cache: BaseCache, key: str, *, timeout: int) -> int | None:
    """Count one more event under `key` (see _Timed.count) in any cache."""
    own = getattr(cache, "count", None)  # ours; a test may swap in another backend
    return own(key, timeout=timeout) if own else count_with_incr(cache, key, timeout=timeout)


def count_with_incr(cache, key: str, *, timeout: int) -> int | None:
    """Django's cache API's way: incr, else add (two round trips the first time)."""
    try:
        return cache.incr(key)
    except ValueError:  # the first event (or its count lapsed)
        if cache.add(key, 1, timeout=timeout):
            return 1
        try:  # a twin request started the count meanwhile
            return cache.incr(key)
        except ValueError:
            return None


class _Timed:
    """Wraps the calls of the backend it is mixed into; answers are unchanged."""

    def get(self, key, default=None, *args, **kwargs):
        started = perf_counter()
        value = super().get(key, _ABSENT, *args, **kwargs)
        _SECONDS["get"].observe(perf_counter() - started)
        if value is _ABSENT:
            _MISS.inc()
            return default
        _HIT.inc()
        return value

    def _timed(self, operation: str, *args, **kwargs):
        started = perf_counter()
        try:
            return getattr(super(), operation)(*args, **kwargs)
        finally:
            _SECONDS[operation].observe(perf_counter() - started)

    def set(self, *args, **kwargs):
        return self._timed("set", *args, **kwargs)

    def add(self, *args, **kwargs):
        return self._timed("add", *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._timed("delete", *args, **kwargs)

    def get_many(self, *args, **kwargs):
        return self._timed("get_many", *args, **kwargs)

    def set_many(self, *args, **kwargs):
        return self._timed("set_many", *args, **kwargs)

    def incr(self, *args, **kwargs):
        return self._timed("incr", *args, **kwargs)

    def touch(self, *args, **kwargs):
        return self._timed("touch", *args, **kwargs)

    def count(self, key: str, *, timeout: int) -> int | None:
        """Count one more event under `key`, which lapses `timeout` seconds after
        its first: the count so far, or None when the cache does not answer (a
        rate limit then limits nothing). Timed as an incr."""
        started = perf_counter()
        try:
            return self._count(key, timeout)
        finally:
            _SECONDS["incr"].observe(perf_counter() - started)

    def _count(self, key: str, timeout: int) -> int | None:
        return count_with_incr(super(), key, timeout=timeout)


class LocMemCache(_Timed, DjangoLocMemCache):
    pass


# What django-redis itself takes for Redis not answering (IGNORE_EXCEPTIONS).
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ResponseError, TimeoutError)


class RedisCache(_Timed, DjangoRedisCache):
    def _count(self, key: str, timeout: int) -> int | None:
        # One round trip, whether or not the count exists yet, and no Lua script
        # (django-redis's incr runs one, and a missing key costs an add and a
        # second incr): start it at 0 with its lifetime unless it exists, then
        # count, in one MULTI/EXEC.
        name = self.client.make_key(key)
        try:
            with self.client.get_client(write=True).pipeline(transaction=True) as pipe:
                pipe.set(name, 0, ex=timeout, nx=True)
                pipe.incr(name)
                return pipe.execute()[1]
        except _REDIS_DOWN:
            if not self._ignore_exceptions:
                raise
            if self._log_ignored_exceptions:
                self.logger.exception("Exception ignored")
            return None
