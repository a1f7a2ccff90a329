"""checkCapacity is cached, and exact: no reader is told an answer a committed
change has made stale, whichever cache backs it, and Redis being down is a
cache miss rather than an error."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from lots.services import spots_add
from reservations.selectors import forget_kept_answers, lot_availability
from reservations.services import reservation_cancel
from tests.factories import UserFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db


def _window(lot, start):
    return {
        "lot_id": lot.slug,
        "vehicle_type": "car",
        "start": start,
        "end": start + timedelta(hours=2),
    }


def _ask(api, lot, start):
    response = api.get(
        f"/api/v1/lots/{lot.slug}/availability",
        {
            "vehicle_type": "car",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
        },
    )
    assert response.status_code == 200, response.content
    return response.json()


def _check_exact(api, lot, driver):
    start = timezone.now() + timedelta(hours=1)
    assert _ask(api, lot, start)["free_spots"] == 3
    assert _ask(api, lot, start)["free_spots"] == 3  # now served from the cache
    taken = book(driver, lot, start=start)
    assert _ask(api, lot, start)["free_spots"] == 2
    reservation_cancel(reservation_id=taken.pk)
    assert _ask(api, lot, start)["free_spots"] == 3
    spots_add(lot=lot, vehicle_type="car", count=1, prefix="NEW")  # staff adds a spot
    assert _ask(api, lot, start)["free_spots"] == 4


def test_answers_change_as_soon_as_bookings_commit(api, lot, driver):
    _check_exact(api, lot, driver)


@pytest.mark.redis
def test_answers_are_exact_with_redis_as_the_cache(api, lot, driver):
    assert "redis" in settings.CACHES["default"]["BACKEND"].lower()
    cache.set("probe", 1)
    assert cache.get("probe") == 1  # really talking to Redis
    _check_exact(api, lot, driver)


def test_a_cached_answer_ends_when_a_hold_it_counted_lapses(lot, driver):
    start = timezone.now() + timedelta(hours=1)
    for _ in range(3):
        book(UserFactory(), lot, start=start)
    assert lot_availability(**_window(lot, start)).is_free is False

    with time_machine.travel(timezone.now() + timedelta(minutes=15, seconds=1)):
        answer = lot_availability(**_window(lot, start))
    assert answer.free_spots == 3


def test_redis_down_means_a_database_read_not_an_error(api, lot, driver, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.1,
                "SOCKET_TIMEOUT": 0.1,
            },
        }
    }
    from django.core.cache import caches

    assert type(caches["default"]).__name__ == "RedisCache"
    start = timezone.now() + timedelta(hours=1)
    assert _ask(api, lot, start)["free_spots"] == 3
    book(driver, lot, start=start)
    assert _ask(api, lot, start)["free_spots"] == 2


def test_a_process_asks_redis_once_for_an_answer_it_keeps(lot, driver, monkeypatch):
    from unittest import mock

    from reservations import selectors

    shared = mock.Mock(wraps=selectors.cache)
    monkeypatch.setattr(selectors, "cache", shared)
    start = timezone.now() + timedelta(hours=1)
    for _ in range(3):
        assert lot_availability(**_window(lot, start)).free_spots == 3
    assert shared.get.call_count == 1  # the first question only: a miss
    assert shared.set.call_count == 1
    book(driver, lot, start=start)  # a new version: the kept answer no longer fits
    assert lot_availability(**_window(lot, start)).free_spots == 2
    assert shared.get.call_count == 2


def test_an_answer_kept_from_the_shared_cache_is_still_exact(lot, driver):
    start = timezone.now() + timedelta(hours=1)
    assert lot_availability(**_window(lot, start)).free_spots == 3
    forget_kept_answers()  # another worker: it reads the answer from the shared cache
    assert lot_availability(**_window(lot, start)).free_spots == 3
    for _ in range(3):
        book(UserFactory(), lot, start=start)
    assert lot_availability(**_window(lot, start)).free_spots == 0
    with time_machine.travel(timezone.now() + timedelta(minutes=15, seconds=1)):
        assert lot_availability(**_window(lot, start)).free_spots == 3  # the holds lapsed


def test_a_process_keeps_a_bounded_number_of_answers(lot, monkeypatch):
    from reservations import selectors

    monkeypatch.setattr(selectors, "_KEPT_MAX", 2)
    start = timezone.now() + timedelta(hours=1)
    for hours in range(4):
        lot_availability(**_window(lot, start + timedelta(hours=hours)))
    assert len(selectors._kept) == 2


def test_threads_keep_answers_side_by_side(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from reservations import selectors

    monkeypatch.setattr(selectors, "_KEPT_MAX", 8)

    def keep(thread: int) -> None:
        for i in range(2000):
            selectors._keep((thread, i), (1, None, 0.0))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(keep, range(4)))  # re-raises what a thread raised
    assert len(selectors._kept) <= 8
