"""Readiness: can this instance do its work? For orchestrators and alerting.

`/healthz` (config/views.py) is the cheap liveness probe a load balancer polls.
`/readyz` checks what ParkSpot depends on, each within a short timeout, and
answers 200 when all are fine, 503 with the failing ones named otherwise:

    {"status": "ok" | "failing",
     "checks": {"database": {...}, "cache": {...}, "broker": {...}, "scheduler": {...}}}

The scheduler check reads the sweeps' heartbeat (reservations.SweepRun, written
by the worker each time beat's sweep runs): it fails when no sweep has run for
SCHEDULER_STALE_AFTER_SECONDS (3 sweep intervals by default), which is how a
dead beat, or no worker, shows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Max
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from reservations.models import SweepRun


class CheckFailed(Exception):
    pass


def _database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {}


def _cache() -> dict:
    key, value = f"readyz:{uuid.uuid4().hex}", uuid.uuid4().hex
    cache.set(key, value, timeout=10)
    try:
        if cache.get(key) != value:  # Redis down: django-redis ignores it, reads miss
            raise CheckFailed("the cache did not keep a value")
    finally:
        cache.delete(key)
    return {}


def _broker() -> dict:
    from kombu import Connection

    from config.celery import app

    # A connection of its own (not the producer pool's), to see the broker now.
    url = app.conf.broker_url
    with Connection(url, transport_options=app.conf.broker_transport_options or {}) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return {"transport": url.split("://", 1)[0]}


def _scheduler() -> dict:
    last = SweepRun.objects.aggregate(at=Max("last_run_at"))["at"]
    stale_after = timedelta(seconds=settings.SCHEDULER_STALE_AFTER_SECONDS)
    if last is None:
        raise CheckFailed("no sweep has run yet (is beat running, and a worker?)")
    age = (timezone.now() - last).total_seconds()
    if age > stale_after.total_seconds():
        raise CheckFailed(
            f"the last sweep ran {age:.0f} s ago (limit {stale_after.total_seconds():.0f} s): "
            "is beat running, and a worker?"
        )
    return {"last_sweep_age_seconds": round(age, 1)}


CHECKS: dict[str, Callable[[], dict]] = {
    "database": _database,
    "cache": _cache,
    "broker": _broker,
    "scheduler": _scheduler,
}


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    results = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            result = {"status": "ok", **check()}
        except Exception as exc:  # a failing dependency is the answer, not an error
            detail = str(exc) if isinstance(exc, CheckFailed) else type(exc).__name__
            result = {"status": "failing", "detail": detail}
        result["ms"] = round((time.monotonic() - started) * 1000, 1)
        results[name] = result
    ok = all(result["status"] == "ok" for result in results.values())
    return JsonResponse(
        {"status": "ok" if ok else "failing", "checks": results}, status=200 if ok else 503
    )
