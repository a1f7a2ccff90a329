"""Reservations' metrics: bookings made and refused (by the code the driver was
answered), every arrow of the state machine counted once its change commits,
and the facts of the database read in a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from lots.services import gate_create
from payments.models import Payment
from reservations.models import Reservation, Status
from reservations.services import (
    holds_expire_lapsed,
    no_shows_declare,
    payment_reference,
    reservation_cancel,
    reservation_complete,
    reservation_confirm,
    reservation_refund,
)
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.metrics_support import Deltas
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db(transaction=True)


def _booking(client: APIClient, lot, *, hours_ahead: float = 2, **fields):
    start = timezone.now() + timedelta(hours=hours_ahead)
    body = {
        "lot_id": lot.slug,
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
        **fields,
    }
    return client.post("/api/v1/reservations", body, format="json")


def test_a_booking_made_through_the_api_is_counted_once(driver_api, lot):
    moved = Deltas()

    assert _booking(driver_api, lot).status_code == 201

    assert moved("parkspot_bookings_made_total", vehicle_type="car") == 1
    assert moved("parkspot_bookings_made_total") == 1
    assert moved("parkspot_bookings_refused_total") == 0


def test_a_booking_replayed_with_its_idempotency_key_is_not_counted_again(driver_api, lot):
    start = timezone.now() + timedelta(hours=3)
    body = {
        "lot_id": lot.slug,
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
    }
    moved = Deltas()
    for _ in range(2):
        answer = driver_api.post(
            "/api/v1/reservations", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
        )
        assert answer.status_code == 201

    assert moved("parkspot_bookings_made_total") == 1


def test_a_booking_whose_transaction_rolls_back_is_not_counted(driver, lot):
    moved = Deltas()

    def book_then_fail() -> None:
        with transaction.atomic():
            book(driver, lot)
            raise RuntimeError("something later in the same transaction failed")

    with pytest.raises(RuntimeError):
        book_then_fail()

    assert Reservation.objects.count() == 0
    assert moved("parkspot_bookings_made_total") == 0


def test_refused_bookings_are_counted_by_the_code_the_driver_was_answered(
    driver_api, driver, lot, settings
):
    moved = Deltas()
    refused = "parkspot_bookings_refused_total"

    # The lot's three car spots are taken: the fourth booking finds none.
    for _ in range(3):
        assert _booking(driver_api, lot).status_code == 201
    no_spot = _booking(driver_api, lot)
    assert (no_spot.status_code, no_spot.json()["code"]) == (409, "no_spot_available")
    assert moved(refused, reason="no_spot_available") == 1

    # The same plate, booked again for part of its window.
    assert _booking(driver_api, lot, hours_ahead=30, vehicle_plate="AB-123").status_code == 201
    plate = _booking(driver_api, lot, hours_ahead=31, vehicle_plate="AB-123")
    assert plate.json()["code"] == "vehicle_already_booked"
    assert moved(refused, reason="vehicle_already_booked") == 1

    settings.MAX_UNPAID_HOLDS = 4
    holds = _booking(driver_api, lot, hours_ahead=60)
    assert holds.json()["code"] == "too_many_unpaid_holds"
    assert moved(refused, reason="too_many_unpaid_holds") == 1
    settings.MAX_UNPAID_HOLDS = 1_000_000

    # Refused before the service is asked: the serializer, the throttle.
    naive = driver_api.post(
        "/api/v1/reservations",
        {"lot_id": lot.slug, "vehicle_type": "car", "start": "2030-01-01T10:00:00"},
        format="json",
    )
    assert naive.status_code == 400
    assert moved(refused, reason=naive.json()["code"]) == 1
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "booking": "1/hour",
        },
    }
    other = APIClient()
    other.force_authenticate(UserFactory())
    assert _booking(other, lot, hours_ahead=80).status_code == 201
    throttled = _booking(other, lot, hours_ahead=90)
    assert throttled.status_code == 429
    assert moved(refused, reason="throttled") == 1

    assert moved(refused) == 5
    assert moved("parkspot_bookings_made_total") == 5


def test_the_website_and_the_api_share_the_service_that_counts_refusals(driver, lot):
    """The service counts what it refuses, whichever door asked."""
    moved = Deltas()
    with pytest.raises(Exception, match="no such lot"):
        book(driver, LotFactory.build(slug="nowhere"))
    assert moved("parkspot_bookings_refused_total", reason="lot_not_found") == 1


def test_every_arrow_of_the_state_machine_is_counted_once(driver, lot):
    _, key = gate_create(lot=lot, name="North")
    gate = APIClient()
    gate.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    now = timezone.now()
    moved = Deltas()

    # Paid, in and out (a gate retrying its report changes nothing).
    stay = book(driver, lot, start=now - timedelta(minutes=1))
    reservation_confirm(reservation_id=stay.pk)
    for _ in range(2):
        arrived = gate.post(
            "/api/v1/gate/arrivals",
            {"reservation_id": stay.code, "time": timezone.now().isoformat()},
            format="json",
        )
        assert arrived.status_code == 200, arrived.content
    left = gate.post(
        "/api/v1/gate/departures",
        {"reservation_id": stay.code, "time": timezone.now().isoformat()},
        format="json",
    )
    assert left.status_code == 200, left.content
    # Cancelled by its driver (twice: once counted).
    cancelled = book(driver, lot, start=now + timedelta(hours=5))
    reservation_cancel(reservation_id=cancelled.pk, actor_user=driver)
    reservation_cancel(reservation_id=cancelled.pk, actor_user=driver)
    # Paid, and nobody came; and a hold nobody paid for.
    absent = book(driver, lot, start=now + timedelta(hours=1))
    reservation_confirm(reservation_id=absent.pk)
    unpaid = book(driver, lot, start=now + timedelta(hours=10))
    with time_machine.travel(absent.start + timedelta(minutes=61)):
        assert no_shows_declare() == 1
        assert holds_expire_lapsed() == 1
        assert no_shows_declare() == 0

    assert moved("parkspot_bookings_made_total") == 4
    assert moved("parkspot_bookings_confirmed_total") == 2
    assert moved("parkspot_arrivals_total", actor="gate") == 1
    assert moved("parkspot_departures_total", overstayed="false") == 1
    assert moved("parkspot_departures_total", overstayed="true") == 0
    assert moved("parkspot_cancellations_total", actor="driver") == 1
    assert moved("parkspot_no_shows_total") == 1
    assert moved("parkspot_holds_expired_total") == 1
    unpaid.refresh_from_db()
    assert unpaid.status == Status.EXPIRED


def test_a_departure_past_the_end_is_counted_as_an_overstay(driver, lot):
    _, key = gate_create(lot=lot, name="North")
    gate = APIClient()
    gate.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    start = timezone.now() - timedelta(minutes=1)
    stay = book(driver, lot, start=start, hours=1)
    reservation_confirm(reservation_id=stay.pk)
    moved = Deltas()
    gate.post(
        "/api/v1/gate/arrivals",
        {"reservation_id": stay.code, "time": timezone.now().isoformat()},
        format="json",
    )
    with time_machine.travel(stay.end + timedelta(minutes=30)):
        left = gate.post(
            "/api/v1/gate/departures",
            {"reservation_id": stay.code, "time": timezone.now().isoformat()},
            format="json",
        )
        assert left.status_code == 200, left.content

    assert moved("parkspot_departures_total", overstayed="true") == 1


def test_a_paid_stay_counts_the_capture_and_a_staff_refund_in_minor_units(stripe, driver):
    lot = LotFactory(currency="usd")
    RateFactory(lot=lot, hourly_amount=300, daily_max_amount=2400)
    SpotFactory(lot=lot)
    _, key = gate_create(lot=lot, name="North")
    gate = APIClient()
    gate.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    stay = book(driver, lot, start=timezone.now() - timedelta(minutes=1), hours=2)
    moved = Deltas()

    reservation_complete(reservation_id=stay.pk, payment_method_id=stripe.card())
    for path in ("arrivals", "departures"):
        answer = gate.post(
            f"/api/v1/gate/{path}",
            {"reservation_id": stay.code, "time": timezone.now().isoformat()},
            format="json",
        )
        assert answer.status_code == 200, answer.content
    staff = UserFactory(is_staff=True, is_superuser=True)
    reservation_refund(reservation_id=stay.pk, amount=250, actor_user=staff)

    payment = Payment.objects.get(reference=payment_reference(stay))
    assert (payment.amount_captured, payment.amount_refunded) == (600, 250)
    usd = {"currency": "usd", "kind": "booking"}
    assert moved("parkspot_authorised_minor_units_total", **usd) == 600
    assert moved("parkspot_captured_minor_units_total", **usd) == 600
    assert moved("parkspot_released_minor_units_total", **usd) == 0
    assert moved("parkspot_refunded_minor_units_total", **usd) == 250
    ok = {"outcome": "succeeded"}
    assert moved("parkspot_payment_operations_total", operation="authorise", **ok) == 1
    assert moved("parkspot_payment_operations_total", operation="capture", **ok) == 1
    assert moved("parkspot_payment_operations_total", operation="refund", **ok) == 1
    assert moved("parkspot_stripe_requests_total", result="ok") >= 3


def test_a_no_show_counts_what_was_captured_and_what_was_released(stripe, driver):
    lot = LotFactory(currency="usd")
    RateFactory(lot=lot, hourly_amount=300, daily_max_amount=2400)
    SpotFactory(lot=lot)
    start = timezone.now() + timedelta(hours=1)
    absent = book(driver, lot, start=start, hours=72)
    moved = Deltas()

    reservation_complete(reservation_id=absent.pk, payment_method_id=stripe.card())
    with time_machine.travel(start + timedelta(minutes=61)):
        assert no_shows_declare() == 1

    usd = {"currency": "usd", "kind": "booking"}
    assert moved("parkspot_no_shows_total") == 1
    assert moved("parkspot_authorised_minor_units_total", **usd) == 3 * 2400
    assert moved("parkspot_captured_minor_units_total", **usd) == 2400
    assert moved("parkspot_released_minor_units_total", **usd) == 2 * 2400
