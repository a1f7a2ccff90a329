"""reserveSpot as a service: allocation, holds, best fit, validation, query counts."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.errors import ApplicationError, InvalidInput
from lots.features import spot_needs
from lots.models import Lot, Spot
from reservations.models import IdempotencyKey, Reservation, Status
from reservations.selectors import lot_availability
from reservations.services import reservation_cancel, reservation_create
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.reservations.helpers import book, overlapping_pairs

pytestmark = pytest.mark.django_db


def test_a_booking_holds_a_spot_and_prices_the_window(lot, driver):
    start = timezone.now() + timedelta(hours=1)
    reservation = book(driver, lot, start=start, hours=3, vehicle_plate="ab-123 cd")

    assert reservation.status == Status.PENDING_PAYMENT
    assert reservation.price_amount == 750
    assert reservation.currency == "eur"
    assert reservation.vehicle_plate == "AB123CD"
    assert reservation.occupied_until == reservation.end
    assert reservation.hold_expires_at == pytest.approx(
        timezone.now() + timedelta(minutes=15), abs=timedelta(seconds=5)
    )
    event = reservation.events.get()
    assert (event.from_status, event.to_status, event.actor) == ("", "pending_payment", "driver")


def test_each_overlapping_booking_gets_a_different_spot_until_none_is_left(lot, driver):
    start = timezone.now() + timedelta(hours=1)
    spots = {book(driver, lot, start=start + timedelta(minutes=10 * i)).spot_id for i in range(3)}
    assert len(spots) == 3

    with pytest.raises(ApplicationError) as exc:
        book(driver, lot, start=start)
    assert (exc.value.status, exc.value.code) == (409, "no_spot_available")
    assert overlapping_pairs() == 0


def test_back_to_back_windows_share_a_spot(driver):
    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory(lot=lot)
    start = timezone.now() + timedelta(hours=1)
    first = book(driver, lot, start=start, hours=2)
    second = book(driver, lot, start=first.end, hours=2)
    assert first.spot_id == second.spot_id


def test_best_fit_picks_the_spot_that_leaves_the_smallest_gap(driver):
    lot = LotFactory()
    RateFactory(lot=lot)
    open_spot = SpotFactory(lot=lot, label="A")
    busy_spot = SpotFactory(lot=lot, label="B")
    start = timezone.now() + timedelta(hours=2)
    # Spot B is booked until exactly our start; A is empty all day.
    earlier = book(driver, lot, start=start - timedelta(hours=1), hours=1)
    assert earlier.spot_id == open_spot.pk  # alphabetical when both are empty
    Reservation.objects.filter(pk=earlier.pk).update(spot=busy_spot)

    ours = book(driver, lot, start=start, hours=2)
    assert ours.spot_id == busy_spot.pk  # fits snugly after B's booking; A stays whole


def test_a_vehicle_gets_a_spot_of_its_own_type(lot, driver):
    with pytest.raises(ApplicationError) as exc:
        book(driver, lot, vehicle_type="van")
    assert exc.value.code == "vehicle_type_not_offered"

    RateFactory(lot=lot, vehicle_type="van", hourly_amount=400, daily_max_amount=3000)
    van_spot = SpotFactory(lot=lot, vehicle_type="van", label="V-1")
    assert book(driver, lot, vehicle_type="van").spot_id == van_spot.pk


def test_spots_out_of_service_are_never_allocated(lot, driver):
    lot.spots.update(is_active=False)
    with pytest.raises(ApplicationError) as exc:
        book(driver, lot)
    assert exc.value.code == "no_spot_available"


def test_a_lapsed_hold_never_blocks_a_new_booking(driver):
    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory(lot=lot)
    start = timezone.now() + timedelta(hours=3)
    stale = book(driver, lot, start=start)

    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        fresh = book(UserFactory(), lot, start=start + timedelta(minutes=30))

    stale.refresh_from_db()
    assert fresh.spot_id == stale.spot_id
    assert stale.status == Status.EXPIRED
    assert stale.events.last().actor == "system"
    assert overlapping_pairs() == 0


def test_a_cancelled_booking_frees_its_spot(lot, driver):
    start = timezone.now() + timedelta(hours=1)
    taken = [book(driver, lot, start=start) for _ in range(3)]
    reservation_cancel(reservation_id=taken[0].pk, actor_user=driver)
    assert book(driver, lot, start=start).spot_id == taken[0].spot_id


@pytest.mark.parametrize(
    ("start_offset", "length", "code"),
    [
        (timedelta(hours=1), timedelta(minutes=29), "window_too_short"),
        (timedelta(hours=1), timedelta(days=30, minutes=1), "window_too_long"),
        (timedelta(hours=1), timedelta(0), "end_before_start"),
        (-timedelta(minutes=6), timedelta(hours=1), "start_in_past"),
        (timedelta(days=90, minutes=1), timedelta(hours=1), "start_too_far_ahead"),
    ],
)
def test_windows_outside_the_limits_are_refused(lot, driver, start_offset, length, code):
    start = timezone.now() + start_offset
    with pytest.raises(InvalidInput) as exc:
        reservation_create(
            user=driver, lot_id=lot.slug, vehicle_type="car", start=start, end=start + length
        )
    assert exc.value.code == code
    assert not Reservation.objects.exists()


def test_a_start_a_few_minutes_ago_is_accepted(lot, driver):
    start = timezone.now() - timedelta(minutes=4)
    assert book(driver, lot, start=start).status == Status.PENDING_PAYMENT


def test_naive_times_are_refused(lot, driver):
    start = timezone.now().replace(tzinfo=None) + timedelta(hours=1)
    with pytest.raises(InvalidInput) as exc:
        reservation_create(
            user=driver,
            lot_id=lot.slug,
            vehicle_type="car",
            start=start,
            end=start + timedelta(hours=1),
        )
    assert exc.value.code == "naive_datetime"


def _lot_with_spots(n: int):
    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory.create_batch(n, lot=lot)
    return lot


@pytest.mark.parametrize("spots", [2, 60])
def test_booking_and_availability_cost_the_same_queries_whatever_the_lot_size(
    driver, spots, django_assert_num_queries
):
    lot = _lot_with_spots(spots)
    # Fill the lot partly so that the queries have bookings to look at.
    start = timezone.now() + timedelta(hours=1)
    book(driver, lot, start=start)
    # the lot's version, then on a cache miss its opening hours and one query for
    # rate, count and lapse
    with django_assert_num_queries(3):
        lot_availability(
            lot_id=lot.slug, vehicle_type="car", start=start, end=start + timedelta(hours=2)
        )
    # cache hit: only the lot's version (only windows the lot is open for are cached)
    with django_assert_num_queries(1):
        lot_availability(
            lot_id=lot.slug, vehicle_type="car", start=start, end=start + timedelta(hours=2)
        )
    # PostgreSQL: a savepoint (the test's transaction makes the outer atomic
    # one), rate+lot with the driver's lock (and whether the lot has opening
    # hours: this one is open around the clock), the booking statement, the
    # release. SQLite: a savepoint, rate+lot, unpaid holds, a savepoint, the best
    # fit (no neighbour of the window is free: the first free spot next), the
    # re-check, insert, event, 2 releases, version bump.
    with django_assert_num_queries(4 if connection.vendor == "postgresql" else 12):
        book(driver, lot, start=start)
    # Spot features and a height cost no query of their own: they are
    # conditions in the same statements.
    Spot.objects.filter(lot=lot).update(has_ev_charging=True, is_covered=True)
    needs = {"features": ["ev_charging", "covered"], "vehicle_height_cm": 200}
    with django_assert_num_queries(3):
        answer = lot_availability(
            lot_id=lot.slug,
            vehicle_type="car",
            start=start,
            end=start + timedelta(hours=2),
            needs=spot_needs(needs["features"], needs["vehicle_height_cm"]),
        )
    assert answer.free_spots == spots - 2
    # The next two bookings, a day apart, each meet the same lot: one plain, one
    # asking for features, in as many queries.
    with CaptureQueriesContext(connection) as plain:
        book(driver, lot, start=start + timedelta(days=1))
    with django_assert_num_queries(len(plain)):
        booked = book(driver, lot, start=start + timedelta(days=2), **needs)
    assert booked.spot.has_ev_charging
    assert booked.spot.is_covered


def test_a_booking_through_the_api_with_a_plate_costs_a_fixed_number_of_queries(
    driver, django_assert_num_queries
):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(driver)
    lot = _lot_with_spots(5)
    start = timezone.now() + timedelta(hours=1)
    body = {
        "lot_id": lot.slug,
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
        "vehicle_plate": "AB-123",
    }
    # PostgreSQL: a savepoint, rate+lot (with its grace, for the terms) with the
    # driver's and plate's locks (and whether the lot has opening hours), the
    # booking statement (limits, pick+lock, insert, event, idempotency key,
    # version bump), the release. SQLite: a savepoint, rate+lot, unpaid holds, plate
    # check, a savepoint, best fit and then first free spot, re-check, insert,
    # event, release, idempotency key, version bump, release. Nothing more to
    # answer with the payment and terms.
    expected = 4 if connection.vendor == "postgresql" else 14
    with django_assert_num_queries(expected):
        response = client.post(
            "/api/v1/reservations", body, format="json", HTTP_IDEMPOTENCY_KEY="once"
        )
    assert response.status_code == 201
    assert response.json()["terms"]["grace_minutes"] == 60


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_booking_is_two_statements_on_postgresql():
    """Between BEGIN and COMMIT: the rate with the driver's and plate's locks,
    then one statement for the limits, the spot, the reservation, its event, its
    Idempotency-Key and the lot's new availability version (step by step it was
    eleven statements)."""
    from django.test.utils import CaptureQueriesContext

    driver = UserFactory()
    lot = _lot_with_spots(5)
    start = timezone.now() + timedelta(hours=1)
    book(driver, lot, start=start)
    version = Lot.objects.get(pk=lot.pk).availability_version

    with CaptureQueriesContext(connection) as queries:
        reservation = book(
            driver, lot, start=start, vehicle_plate="AB-123", idempotency_key="two-statements"
        )

    sqls = [q["sql"].strip() for q in queries]
    assert len(sqls) == 4, sqls
    assert (sqls[0], sqls[3]) == ("BEGIN", "COMMIT")
    assert "pg_advisory_xact_lock" in sqls[1]
    statement = sqls[2]
    for part in (
        "FOR UPDATE OF s SKIP LOCKED",
        "INSERT INTO reservations_reservation ",
        "INSERT INTO reservations_reservationevent",
        "INSERT INTO reservations_idempotencykey",
        "UPDATE lots_lot SET availability_version",
    ):
        assert part in statement
    row = Reservation.objects.get(code=reservation.code)
    assert (row.spot_id, row.vehicle_plate, row.status) == (
        reservation.spot.pk,
        "AB123",
        Status.PENDING_PAYMENT,
    )
    assert row.events.get().actor_user == driver
    assert IdempotencyKey.objects.get(key="two-statements").reservation == row
    assert Lot.objects.get(pk=lot.pk).availability_version == version + 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_refusal_on_postgresql_is_the_same_two_statements_as_a_booking():
    """A sold-out lot answers from the booking statement alone: whether the
    request's Idempotency-Key booked before, and whether a closure of the whole
    lot is in the way, come back with its answer (each looked up afterwards, it
    was two more queries a refusal)."""
    driver, other = UserFactory(), UserFactory()
    lot = _lot_with_spots(1)
    start = timezone.now() + timedelta(hours=1)
    book(other, lot, start=start)

    with CaptureQueriesContext(connection) as queries, pytest.raises(ApplicationError) as refused:
        book(driver, lot, start=start, idempotency_key="sold-out")

    assert refused.value.code == "no_spot_available"
    sqls = [q["sql"].strip() for q in queries]
    assert len(sqls) == 4, sqls
    assert (sqls[0], sqls[3]) == ("BEGIN", "COMMIT")
    assert not IdempotencyKey.objects.filter(key="sold-out").exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_retried_booking_gets_its_first_answer_once_the_lot_has_sold_out():
    driver, other = UserFactory(), UserFactory()
    lot = _lot_with_spots(1)
    start = timezone.now() + timedelta(hours=1)
    first = book(driver, lot, start=start, idempotency_key="retry-me")
    with pytest.raises(ApplicationError):
        book(other, lot, start=start)

    again = reservation_create(
        user=driver,
        lot_id=lot.slug,
        vehicle_type="car",
        start=start,
        end=start + timedelta(hours=2),
        idempotency_key="retry-me",
    )

    assert not again.created
    assert again.reservation.code == first.code
