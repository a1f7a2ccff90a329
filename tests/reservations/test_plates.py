"""One vehicle, one place at a time (DESIGN §4): a plate cannot hold two
overlapping blocking bookings, in any lot, even under concurrent requests; and
a gate's plate camera finds exactly the booking due, never a guess."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
import time_machine
from django.db import connection, connections
from django.utils import timezone
from rest_framework.test import APIClient

from config.errors import ApplicationError
from lots.services import gate_create
from reservations.models import BLOCKING_STATUSES, Reservation, Status
from reservations.services import (
    reservation_arrive,
    reservation_confirm,
    reservation_create,
    reservation_depart,
)
from tests.conftest import NOW
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
PLATE = "AB-123-CD"  # stored as AB123CD


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _other_lot(label_prefix: str = "O"):
    lot = LotFactory(currency="usd")
    RateFactory(lot=lot, vehicle_type="car")
    for n in range(1, 3):
        SpotFactory(lot=lot, label=f"{label_prefix}-{n:03}", vehicle_type="car")
    return lot


def _client(user=None) -> APIClient:
    client = APIClient()
    client.force_authenticate(user or UserFactory())
    return client


def _reserve(client, lot, start, end, plate=PLATE, **headers):
    return client.post(
        "/api/v1/reservations",
        {
            "lot_id": lot.slug,
            "vehicle_type": "car",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "vehicle_plate": plate,
        },
        format="json",
        headers=headers,
    )


def _refused_as_booked(response) -> bool:
    return (response.status_code, response.json().get("code")) == (409, "vehicle_already_booked")


def _live(alias: str) -> str:
    """SQL: the row blocks now (a blocking state, and not an unpaid hold past its TTL)."""
    statuses = ", ".join(f"'{s}'" for s in BLOCKING_STATUSES)
    return (
        f"{alias}.status IN ({statuses}) AND NOT ({alias}.status = '{Status.PENDING_PAYMENT}'"
        f" AND {alias}.hold_expires_at <= %(now)s)"
    )


def plate_overlaps() -> int:
    """Pairs of blocking bookings of one plate whose [start, occupied_until) meet,
    in any lots. Plain SQL, independent of the code under test."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT COUNT(*) FROM reservations_reservation a
            JOIN reservations_reservation b
              ON a.vehicle_plate = b.vehicle_plate AND a.id < b.id
             AND a.start < b.occupied_until AND b.start < a.occupied_until
            WHERE a.vehicle_plate <> '' AND {_live("a")} AND {_live("b")}
            """,  # noqa: S608  (constants only; values are parameters)
            {"now": now},
        )
        return cursor.fetchone()[0]


# --- 3. one vehicle, one place ----------------------------------------------------------------


def test_a_plate_cannot_hold_two_overlapping_bookings_in_any_lot(clock, lot):
    elsewhere = _other_lot()
    driver = _client()
    start = NOW + HOUR
    first = _reserve(driver, lot, start, start + 2 * HOUR)
    assert first.status_code == 201, first.content

    overlapping = (start + HOUR, start + 3 * HOUR)
    same_lot = _reserve(driver, lot, *overlapping)
    other_lot = _reserve(driver, elsewhere, *overlapping, plate="ab 123 cd")
    other_driver = _reserve(_client(), elsewhere, *overlapping, plate="AB123CD")
    inside = _reserve(driver, elsewhere, start + 30 * MINUTE, start + 90 * MINUTE)
    for response in (same_lot, other_lot, other_driver, inside):
        assert _refused_as_booked(response), response.content
        assert response.json()["fields"].keys() == {"vehicle_plate"}
    assert Reservation.objects.count() == 1

    # Without a plate, or with another one, the same window is fine.
    assert _reserve(driver, elsewhere, *overlapping, plate="").status_code == 201
    assert _reserve(driver, elsewhere, *overlapping, plate="XY-999-ZZ").status_code == 201
    assert plate_overlaps() == 0


def test_a_paid_and_a_parked_booking_keep_the_plate_busy(clock, lot):
    elsewhere = _other_lot()
    paid = book(UserFactory(), lot, start=NOW, hours=3, vehicle_plate=PLATE)
    reservation_confirm(reservation_id=paid.pk)
    response = _reserve(_client(), elsewhere, NOW + HOUR, NOW + 2 * HOUR)
    assert _refused_as_booked(response)

    reservation_arrive(reservation_id=paid.pk, at=NOW)
    response = _reserve(_client(), elsewhere, NOW + HOUR, NOW + 2 * HOUR)
    assert _refused_as_booked(response)


def test_a_lapsed_unpaid_hold_does_not_keep_the_plate_busy(clock, lot, settings):
    elsewhere = _other_lot()
    start = NOW + HOUR
    held = _reserve(_client(), lot, start, start + 2 * HOUR)
    assert held.status_code == 201

    clock.move_to(NOW + timedelta(minutes=settings.HOLD_TTL_MINUTES) - MINUTE)
    assert _refused_as_booked(_reserve(_client(), elsewhere, start, start + 2 * HOUR))

    clock.move_to(NOW + timedelta(minutes=settings.HOLD_TTL_MINUTES))  # the hold lapsed
    response = _reserve(_client(), elsewhere, start, start + 2 * HOUR)
    assert response.status_code == 201, response.content
    assert response.json()["vehicle_plate"] == "AB123CD"
    assert plate_overlaps() == 0


def test_back_to_back_bookings_of_one_plate_are_fine(clock, lot):
    elsewhere = _other_lot()
    driver = _client()
    start = NOW + HOUR
    assert _reserve(driver, lot, start, start + 2 * HOUR).status_code == 201
    after = _reserve(driver, elsewhere, start + 2 * HOUR, start + 4 * HOUR)
    before = _reserve(driver, lot, start - 30 * MINUTE, start)
    assert (after.status_code, before.status_code) == (201, 201)
    assert plate_overlaps() == 0


def test_cancelling_a_booking_frees_its_plate(clock, lot):
    elsewhere = _other_lot()
    driver = _client()
    start = NOW + HOUR
    first = _reserve(driver, lot, start, start + 2 * HOUR).json()
    assert _refused_as_booked(_reserve(driver, elsewhere, start, start + 2 * HOUR))

    cancelled = driver.post(f"/api/v1/reservations/{first['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"

    again = _reserve(driver, elsewhere, start, start + 2 * HOUR)
    assert again.status_code == 201, again.content
    assert plate_overlaps() == 0


def test_a_car_that_left_early_can_be_booked_for_the_rest_of_its_window(clock, lot):
    elsewhere = _other_lot()
    stay = book(UserFactory(), lot, start=NOW, hours=4, vehicle_plate=PLATE)
    reservation_confirm(reservation_id=stay.pk)
    reservation_arrive(reservation_id=stay.pk, at=NOW)
    clock.move_to(NOW + HOUR)
    reservation_depart(reservation_id=stay.pk, at=NOW + HOUR)

    response = _reserve(_client(), elsewhere, NOW + HOUR, NOW + 3 * HOUR)
    assert response.status_code == 201, response.content
    assert plate_overlaps() == 0


def test_a_booking_retried_with_its_idempotency_key_is_replayed_not_refused(clock, lot):
    driver = _client()
    start = NOW + HOUR
    first = _reserve(driver, lot, start, start + 2 * HOUR, **{"Idempotency-Key": "k-1"})
    again = _reserve(driver, lot, start, start + 2 * HOUR, **{"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert Reservation.objects.count() == 1


def _run_in_threads(jobs, *, workers: int):
    """Run callables at once (a barrier lines them up); each thread closes its connection."""
    barrier = threading.Barrier(min(workers, len(jobs)))

    def run(job):
        try:
            barrier.wait(timeout=30)
            return job()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, jobs))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_plate_booked_in_many_lots_at_once_wins_exactly_once():
    lots = []
    for _ in range(20):
        lot = LotFactory()
        RateFactory(lot=lot)
        SpotFactory.create_batch(2, lot=lot)
        lots.append(lot)
    users = UserFactory.create_batch(len(lots))
    start = timezone.now() + 2 * HOUR

    def attempt(user, lot, offset):
        def job():
            try:
                return reservation_create(
                    user=user,
                    lot_id=lot.slug,
                    vehicle_type="car",
                    start=start + offset,
                    end=start + offset + HOUR,
                    vehicle_plate="RACE 42",
                ).reservation.code
            except ApplicationError as exc:
                return exc.code

        return job

    # Every window overlaps every other one by at least 40 minutes.
    jobs = [
        attempt(user, lot, timedelta(minutes=i))
        for i, (user, lot) in enumerate(zip(users, lots, strict=True))
    ]
    outcomes = Counter(
        "won" if "-" in result else result for result in _run_in_threads(jobs, workers=len(jobs))
    )

    assert outcomes == {"won": 1, "vehicle_already_booked": len(lots) - 1}
    assert Reservation.objects.filter(vehicle_plate="RACE42").count() == 1
    assert plate_overlaps() == 0
    assert connection.vendor == "postgresql"


# --- 4. the gate's plate camera --------------------------------------------------------------

DAY = datetime(2026, 3, 5, tzinfo=NOW.tzinfo)  # the day after NOW


def _gate(lot) -> APIClient:
    _, key = gate_create(lot=lot, name="Camera")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _plate_event(gate, kind, plate, at):
    return gate.post(
        f"/api/v1/gate/{kind}", {"plate": plate, "time": at.isoformat()}, format="json"
    )


def _confirmed(lot, *, start, hours=2, plate=PLATE, user=None) -> Reservation:
    reservation = book(user or UserFactory(), lot, start=start, hours=hours, vehicle_plate=plate)
    return reservation_confirm(reservation_id=reservation.pk).reservation


def _legacy_twin(first: Reservation, *, start: datetime, end: datetime) -> Reservation:
    """A second confirmed booking of the same plate at the same lot, on another
    spot: data made before the one-plate rule existed."""
    spot = first.lot.spots.exclude(pk=first.spot_id).first()
    return Reservation.objects.create(
        user=UserFactory(),
        lot=first.lot,
        spot=spot,
        vehicle_type="car",
        vehicle_plate=first.vehicle_plate,
        start=start,
        end=end,
        occupied_until=end,
        status=Status.CONFIRMED,
        price_amount=first.price_amount,
        currency=first.currency,
    )


@pytest.mark.parametrize(
    ("first_starts", "twin_starts", "arrival"),
    [
        (0, 30, 45),  # both have started
        (10, 5, 0),  # neither has started, both are open for early arrival
    ],
)
def test_a_plate_read_matching_two_bookings_at_the_lot_parks_neither(
    clock, lot, first_starts, twin_starts, arrival
):
    first = _confirmed(lot, start=NOW + first_starts * MINUTE)
    twin = _legacy_twin(
        first, start=NOW + twin_starts * MINUTE, end=NOW + (twin_starts + 120) * MINUTE
    )
    at = NOW + arrival * MINUTE
    clock.move_to(at)

    response = _plate_event(_gate(lot), "arrivals", "ab-123-cd", at)

    assert (response.status_code, response.json()["code"]) == (409, "plate_ambiguous")
    for reservation in (first, twin):
        reservation.refresh_from_db()
        assert (reservation.status, reservation.arrived_at) == (Status.CONFIRMED, None)
        assert not reservation.events.filter(to_status=Status.PARKED).exists()


def test_a_plate_read_with_no_booking_due_at_the_lot_is_not_found(clock, lot):
    elsewhere = _other_lot()
    _confirmed(lot, start=NOW + HOUR, plate="LATER-1")  # due, but not yet open for arrival
    _confirmed(elsewhere, start=NOW, plate="AWAY-1")  # due at another lot
    gate = _gate(lot)

    for plate in ("LATER-1", "AWAY-1", "NEVER-SEEN"):
        response = _plate_event(gate, "arrivals", plate, NOW)
        assert (response.status_code, response.json()["code"]) == (
            404,
            "reservation_not_found",
        ), plate
    assert not Reservation.objects.filter(status=Status.PARKED).exists()


def test_a_plate_read_between_back_to_back_bookings_parks_the_one_that_has_started(clock, lot):
    clock.move_to(DAY.replace(hour=7, minute=55))
    driver = UserFactory()
    morning = _confirmed(lot, start=DAY.replace(hour=8), user=driver)  # 08:00-10:00
    midday = _confirmed(lot, start=DAY.replace(hour=10), user=driver)  # 10:00-12:00
    gate = _gate(lot)

    at = DAY.replace(hour=9, minute=50)  # early for midday, on time for morning
    clock.move_to(at)
    response = _plate_event(gate, "arrivals", PLATE, at)

    assert response.status_code == 200, response.content
    assert (response.json()["id"], response.json()["status"]) == (morning.code, "parked")
    midday.refresh_from_db()
    assert (midday.status, midday.arrived_at) == (Status.CONFIRMED, None)

    # The gate retries the same read: the same reservation, parked once.
    clock.move_to(at + 5 * timedelta(seconds=1))
    again = _plate_event(gate, "arrivals", PLATE, at)
    assert again.status_code == 200
    assert again.json() == response.json()
    assert morning.events.filter(to_status=Status.PARKED).count() == 1
    midday.refresh_from_db()
    assert midday.status == Status.CONFIRMED


def test_a_departure_by_plate_completes_the_parked_car_and_a_retry_gets_the_same_answer(clock, lot):
    stay = _confirmed(lot, start=NOW)
    gate = _gate(lot)
    assert _plate_event(gate, "arrivals", PLATE, NOW).json()["status"] == "parked"
    # Not parked yet, so never the one a departure by plate finds.
    later = _confirmed(lot, start=NOW + 3 * HOUR, plate=PLATE)

    left_at = NOW + HOUR
    clock.move_to(left_at)
    left = _plate_event(gate, "departures", "ab 123 cd", left_at)

    assert left.status_code == 200, left.content
    assert (left.json()["id"], left.json()["status"]) == (stay.code, "completed")
    assert left.json()["departed_at"] is not None

    clock.move_to(left_at + 10 * timedelta(seconds=1))
    again = _plate_event(gate, "departures", PLATE, left_at)  # the gate's retry
    assert again.status_code == 200
    assert again.json() == left.json()
    assert stay.events.filter(to_status=Status.COMPLETED).count() == 1
    later.refresh_from_db()
    assert later.status == Status.CONFIRMED

    clock.move_to(left_at + 5 * MINUTE)
    gone = _plate_event(gate, "departures", PLATE, left_at + 5 * MINUTE)  # nobody parked
    assert (gone.status_code, gone.json()["code"]) == (404, "reservation_not_found")
