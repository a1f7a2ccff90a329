"""Shared fixtures. Tests needing a real service carry a marker (postgres, redis):
without the service they skip, but under REQUIRE_SERVICES=1 (CI) they fail."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.stripe_support import localstripe_url, stripe  # noqa: F401  (fixtures)

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"

# A fixed "now" for tests that travel in time: a Wednesday, mid-morning UTC.
NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def _missing(service: str, why: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{service} is required (REQUIRE_SERVICES=1) but {why}")
    pytest.skip(f"needs {service}: {why}")


@pytest.fixture(autouse=True)
def _require_services(request) -> None:
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing("PostgreSQL", "DATABASE_URL does not point at PostgreSQL")
    if request.node.get_closest_marker("redis"):
        from django.conf import settings

        if not settings.REDIS_URL:
            _missing("Redis", "REDIS_URL is not set")


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")  # only our prefix: Redis's clear() is FLUSHDB
    else:
        cache.clear()
    # Kept per process by (lot id, version): tests roll back, so ids and versions repeat.
    from reservations.selectors import forget_kept_answers

    forget_kept_answers()


@pytest.fixture(autouse=True)
def _not_inside_a_task() -> None:
    # Eager tasks run by the race tests' threads save and restore Celery's global
    # "inside a task" flag without a lock, and can leave it set: a later test's
    # `.delay().get()` would then be refused as a join inside a task.
    from celery._state import _set_task_join_will_block

    _set_task_join_will_block(False)


@pytest.fixture
def frozen_now():
    """Stop the clock at NOW (it still ticks, so ordering by time works)."""
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def driver(db):
    return UserFactory()


@pytest.fixture
def driver_api(driver) -> APIClient:
    client = APIClient()
    client.force_authenticate(driver)
    return client


@pytest.fixture
def lot(db):
    """A lot in Paris charging €2.50/h for cars, capped at €20 a day, with 3 car spots."""
    lot = LotFactory(slug="paris-centre", timezone="Europe/Paris", currency="eur")
    RateFactory(lot=lot, vehicle_type="car", hourly_amount=250, daily_max_amount=2000)
    for n in range(1, 4):
        SpotFactory(lot=lot, label=f"C-{n:03}", vehicle_type="car")
    return lot


class LogLines:
    """What was logged while a test ran, as the JSON lines `make run` writes
    (config/logs.py's formatter, LOG_FORMAT=json)."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    @property
    def text(self) -> str:
        return self._stream.getvalue()

    @property
    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def events(self, event: str) -> list[dict]:
        return [line for line in self.all if line["event"] == event]

    def starting(self, prefix: str) -> list[dict]:
        return [line for line in self.all if line["event"].startswith(prefix)]


@pytest.fixture
def log_lines(monkeypatch):
    """Every line logged during the test (by any logger, at INFO and above)."""
    import logging.config

    from config import logs

    spec = logs.formatter("json")
    formatter = spec.pop("()")(**spec)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    # Queueing the first task of a process runs django.setup() again (Celery's
    # Django fix-up), which configures logging anew: keep capturing after it.
    configure = logging.config.dictConfig

    def configure_and_keep_capturing(config: dict) -> None:
        configure(config)
        root.addHandler(handler)

    monkeypatch.setattr(logging.config, "dictConfig", configure_and_keep_capturing)
    try:
        yield LogLines(stream)
    finally:
        root.removeHandler(handler)


def window(hours_from_now: float = 1, length_hours: float = 2, now: datetime | None = None):
    start = (now or datetime.now(UTC)) + timedelta(hours=hours_from_now)
    return start, start + timedelta(hours=length_hours)


def pytest_configure(config) -> None:
    from django.conf import settings

    # Runs in parallel (two engineers, xdist) must not flush each other's cache.
    for backend in settings.CACHES.values():
        backend["KEY_PREFIX"] = f"{backend.get('KEY_PREFIX', '')}test{os.getpid()}"
    # Celery tasks run in the test's own process, at once (the system tests
    # start a real worker for what the scheduler does).
    from config.celery import app as celery_app

    celery_app.conf.task_always_eager = True
    # Race tests run dozens of threads, each with its own connection: a pool
    # sized for a web process would line them up instead of racing them.
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    if isinstance(pool, dict):
        pool["max_size"] = 64
    # Tests fill lots with one driver's unpaid bookings; the cap on unpaid holds
    # (MAX_UNPAID_HOLDS) has tests of its own, which set it.
    settings.MAX_UNPAID_HOLDS = 1_000_000
    # Hermetic whatever the shell exports: only the `stripe` fixture turns payments on.
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_API_BASE = ""
    # Hashing passwords slowly is the point in production and a waste in tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # No collectstatic before tests: serve static files unhashed.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
