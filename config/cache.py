"""The cache backends we use, timed: hits, misses and how long each call took.

The same classes as Django's local-memory cache and django-redis's, with each
call wrapped; settings.py swaps them in (the metrics block). django-prometheus's
own cache backends count hits and misses but time nothing (and its local-memory
one answers the default for a cached 0 or empty list), hence these.
"""

from __future__ import annotations

from time import perf_counter

from django.core.cache.backends.locmem import LocMemCache as DjangoLocMemCache
from django_redis.cache import RedisCache as DjangoRedisCache
from prometheus_client import Counter, Histogram

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


class LocMemCache(_Timed, DjangoLocMemCache):
    pass


class RedisCache(_Timed, DjangoRedisCache):
    pass
