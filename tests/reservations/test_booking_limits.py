"""One account cannot hoard a lot: at most MAX_UNPAID_HOLDS unpaid holds at once,
and THROTTLE_BOOKING_RATE bookings per driver, on the API and the website alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from rest_framework.test import APIClient

from reservations import hot_sql
from reservations.models import Reservation, Status
from reservations.services import reservation_cancel, reservation_confirm
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def big_lot():
    lot = LotFactory(slug="big", timezone="UTC", currency="usd")
    RateFactory(lot=lot)
    SpotFactory.create_batch(20, lot=lot)
    return lot


@pytest.fixture
def capped(settings):
    settings.MAX_UNPAID_HOLDS = 3


def _post(client, lot, n: int):
    start = datetime.now(UTC) + timedelta(hours=1 + 3 * n)
    return client.post(
        "/api/v1/reservations",
        {
            "lot_id": lot.slug,
            "vehicle_type": "car",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
        },
        format="json",
    )


def test_a_fourth_unpaid_hold_is_refused_with_a_reason(capped, big_lot, driver_api):
    for n in range(3):
        assert _post(driver_api, big_lot, n).status_code == 201
    refused = _post(driver_api, big_lot, 3)
    assert refused.status_code == 409
    assert refused.json()["code"] == "too_many_unpaid_holds"
    assert "3 bookings waiting for payment" in refused.json()["detail"]
    assert Reservation.objects.count() == 3


def test_holds_piled_up_under_a_higher_limit_are_counted_only_up_to_the_new_one(
    settings, big_lot, driver, driver_api
):
    settings.MAX_UNPAID_HOLDS = 6
    for n in range(6):
        assert _post(driver_api, big_lot, n).status_code == 201
    settings.MAX_UNPAID_HOLDS = 3

    refused = _post(driver_api, big_lot, 6)

    assert refused.status_code == 409
    assert refused.json()["code"] == "too_many_unpaid_holds"
    assert "3 bookings waiting for payment" in refused.json()["detail"]
    now = datetime.now(UTC)
    # What the check reads is bounded by the limit, not by what the driver holds.
    assert hot_sql.unpaid_holds(user_pk=driver.pk, now=now, at_most=3) == 3
    assert hot_sql.unpaid_holds(user_pk=driver.pk, now=now, at_most=10) == 6


def test_paying_cancelling_or_a_lapse_frees_a_place(capped, big_lot, driver, driver_api):
    held = [_post(driver_api, big_lot, n).json()["id"] for n in range(3)]
    reservation_confirm(reservation_id=Reservation.objects.get(code=held[0]).pk)
    assert _post(driver_api, big_lot, 3).status_code == 201
    reservation_cancel(reservation_id=Reservation.objects.get(code=held[1]).pk)
    assert _post(driver_api, big_lot, 4).status_code == 201
    assert _post(driver_api, big_lot, 5).status_code == 409
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=16)):
        assert _post(driver_api, big_lot, 6).status_code == 201  # the holds lapsed


def test_other_drivers_are_not_held_back(capped, big_lot, driver_api):
    for n in range(3):
        _post(driver_api, big_lot, n)
    other = APIClient()
    other.force_authenticate(UserFactory())
    assert _post(other, big_lot, 0).status_code == 201


def test_the_website_says_so_next_to_the_form(capped, big_lot, driver):
    for n in range(3):
        start = datetime.now(UTC) + timedelta(hours=1 + 3 * n)
        Reservation.objects.create(
            user=driver,
            lot=big_lot,
            spot=big_lot.spots.all()[n],
            vehicle_type="car",
            start=start,
            end=start + timedelta(hours=2),
            occupied_until=start + timedelta(hours=2),
            status=Status.PENDING_PAYMENT,
            hold_expires_at=datetime.now(UTC) + timedelta(minutes=10),
            price_amount=600,
            currency="usd",
        )
    browser = Client()
    browser.force_login(driver)
    start = datetime.now(UTC) + timedelta(days=2)
    response = browser.post(
        f"/lots/{big_lot.slug}/reserve/",
        {
            "vehicle_type": "car",
            "start": start.strftime("%Y-%m-%dT%H:00"),
            "end": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:00"),
            "idempotency_key": "web-4",
        },
    )
    assert response.status_code == 409
    assert "3 bookings waiting for payment" in response.content.decode()


def test_bookings_beyond_the_rate_are_429_with_a_retry_after(
    settings, big_lot, driver_api, frozen_now
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "booking": "2/min",
        },
    }
    assert [_post(driver_api, big_lot, n).status_code for n in range(2)] == [201, 201]
    refused = _post(driver_api, big_lot, 2)
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert 0 < int(refused["Retry-After"]) <= 60  # the rest of the minute
    assert driver_api.get("/api/v1/reservations").status_code == 200  # reading is free
    frozen_now.shift(timedelta(minutes=1))
    assert _post(driver_api, big_lot, 3).status_code == 201  # a new minute, a new count

    browser = Client()
    browser.force_login(UserFactory())
    page = f"/lots/{big_lot.slug}/reserve/"
    for _ in range(2):
        browser.post(page, {"vehicle_type": "car"})
    response = browser.post(page, {"vehicle_type": "car"})
    assert response.status_code == 429
    assert "a lot of bookings in a short time" in response.content.decode()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_requests_never_pass_the_cap(capped, big_lot):
    from reservations.services import reservation_create
    from tests.reservations.test_concurrency import _run_in_threads

    driver = UserFactory()

    def book(n):
        start = datetime.now(UTC) + timedelta(hours=1 + 3 * n)
        try:
            reservation_create(
                user=driver,
                lot_id=big_lot.slug,
                vehicle_type="car",
                start=start,
                end=start + timedelta(hours=2),
            )
            return "booked"
        except Exception as exc:
            return getattr(exc, "code", repr(exc))

    outcomes = _run_in_threads([lambda n=n: book(n) for n in range(12)], workers=12)
    assert sorted(outcomes).count("booked") == 3
    assert set(outcomes) == {"booked", "too_many_unpaid_holds"}
    assert Reservation.objects.filter(user=driver).count() == 3
