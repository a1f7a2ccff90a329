"""A parked car occupies its spot until it leaves, whatever its booked end
(DESIGN §4): availability, allocation and the availability cache keep an
overstayer's spot off the market; the sweep moves (or cancels, refunded) the
bookings already on it; an arrival at a spot that still has a car in it gets
another; a car whose exit the gate never reports has its price captured in
time; and staff see the car as parked in its spot.

Every test runs on a clock that stands still (time-machine, tick=False) at the
shared NOW, a Wednesday 10:00 UTC: the car in the way is booked 10:00-12:00.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import time_machine
from django.core import mail
from rest_framework.test import APIClient

from lots.services import gate_create
from payments.models import Payment
from reservations.models import Reservation, Status
from reservations.occupancy import FREE, PARKED, lot_occupancy
from reservations.services import (
    no_shows_declare,
    overstays_hold_spots,
    payment_reference,
    reservation_arrive,
    reservation_cancel,
    reservation_complete,
    reservation_confirm,
    unreported_exits_capture,
)
from tests.conftest import NOW
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.reservations.helpers import book, overlapping_pairs

# Sweeps tell drivers after the commit, and settle payments after it: let
# on_commit callbacks run for real, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

START = NOW  # the overstaying car's booking: 10:00-12:00 UTC
END = NOW + timedelta(hours=2)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _lot(*labels: str):
    """A lot charging $3/h for cars ($24 a day at most), with these car spots."""
    lot = LotFactory(currency="usd")
    RateFactory(lot=lot, vehicle_type="car", hourly_amount=300, daily_max_amount=2400)
    for label in labels:
        SpotFactory(lot=lot, label=label, vehicle_type="car")
    return lot


@pytest.fixture
def one_spot(db):
    return _lot("C-001")


@pytest.fixture
def two_spots(db):
    return _lot("C-001", "C-002")


def _driver_client(user=None) -> APIClient:
    client = APIClient()
    client.force_authenticate(user or UserFactory())
    return client


def _gate(lot) -> APIClient:
    _, key = gate_create(lot=lot, name="Main gate")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _confirmed(lot, *, start, hours=2, plate="", user=None) -> Reservation:
    reservation = book(user or UserFactory(), lot, start=start, hours=hours, vehicle_plate=plate)
    return reservation_confirm(reservation_id=reservation.pk).reservation


def _parked(lot, *, plate="OVER-1") -> Reservation:
    """A car booked 10:00-12:00 that arrived at 10:00 (call at NOW)."""
    reservation = _confirmed(lot, start=START, plate=plate)
    return reservation_arrive(reservation_id=reservation.pk, at=START).reservation


def _availability(lot, start, end) -> dict:
    response = APIClient().get(
        f"/api/v1/lots/{lot.slug}/availability",
        {"vehicle_type": "car", "start": start.isoformat(), "end": end.isoformat()},
    )
    assert response.status_code == 200, response.content
    return response.json()


def _reserve(lot, start, end, *, client=None):
    return (client or _driver_client()).post(
        "/api/v1/reservations",
        {
            "lot_id": lot.slug,
            "vehicle_type": "car",
            "start": start.isoformat(),
            "end": end.isoformat(),
        },
        format="json",
    )


def _arrive(gate, reservation, at):
    return gate.post(
        "/api/v1/gate/arrivals",
        {"reservation_id": reservation.code, "time": at.isoformat()},
        format="json",
    )


def _leave(gate, reservation, at):
    return gate.post(
        "/api/v1/gate/departures",
        {"reservation_id": reservation.code, "time": at.isoformat()},
        format="json",
    )


# --- 1. the overstayer's spot is neither offered nor booked ---------------------------------


def test_a_car_parked_past_its_end_keeps_its_spot_off_the_market(clock, lot):
    car = _parked(lot)
    clock.move_to(END + 30 * MINUTE)
    start, end = END + 35 * MINUTE, END + 2 * HOUR

    answer = _availability(lot, start, end)
    assert (answer["is_free"], answer["free_spots"]) == (True, 2)

    labels = []
    for _ in range(2):
        response = _reserve(lot, start, end)
        assert response.status_code == 201, response.content
        labels.append(response.json()["spot"]["label"])
    assert car.spot.label not in labels
    assert len(set(labels)) == 2

    last = _reserve(lot, start, end)
    assert (last.status_code, last.json()["code"]) == (409, "no_spot_available")
    assert not Reservation.objects.filter(spot=car.spot).exclude(pk=car.pk).exists()
    assert overlapping_pairs() == 0


def test_an_overstayer_on_the_last_spot_blocks_every_later_window_until_it_leaves(clock, one_spot):
    _parked(one_spot)
    clock.move_to(END + 10 * MINUTE)

    for start in (END + 15 * MINUTE, END + 24 * HOUR):  # soon, and tomorrow
        answer = _availability(one_spot, start, start + 2 * HOUR)
        assert (answer["is_free"], answer["free_spots"]) == (False, 0)
        response = _reserve(one_spot, start, start + 2 * HOUR)
        assert (response.status_code, response.json()["code"]) == (409, "no_spot_available")
    assert Reservation.objects.count() == 1


def test_a_cached_free_answer_ends_the_moment_the_parked_car_starts_to_overstay(clock, one_spot):
    _parked(one_spot)
    later = (END + 30 * MINUTE, END + 90 * MINUTE)  # after the car's booked end

    clock.move_to(END - 30 * timedelta(seconds=1))  # 11:59:30, the car is still within
    assert _availability(one_spot, *later)["free_spots"] == 1
    assert _availability(one_spot, *later)["free_spots"] == 1  # from the cache

    # Nothing is booked; the car simply does not leave at 12:00. Well within
    # the cache's lifetime (60 s), the answer must already have changed.
    clock.move_to(END + 10 * timedelta(seconds=1))
    answer = _availability(one_spot, *later)
    assert (answer["is_free"], answer["free_spots"]) == (False, 0)


def test_after_an_overstaying_car_leaves_its_spot_is_offered_and_booked_again(clock, one_spot):
    car = _parked(one_spot)
    gate = _gate(one_spot)
    window = (END + 75 * MINUTE, END + 3 * HOUR)  # 13:15-15:00

    clock.move_to(END + 65 * MINUTE)  # 13:05: still in, and cached as taken
    assert _availability(one_spot, *window)["free_spots"] == 0

    left_at = END + 70 * MINUTE  # 13:10
    clock.move_to(left_at)
    response = _leave(gate, car, left_at)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "completed"
    assert body["charges"]["overstay"] == {"amount": 600, "currency": "usd"}  # 2 started hours
    car.refresh_from_db()
    assert car.occupied_until == left_at  # it held the spot until it really left

    assert _availability(one_spot, *window)["free_spots"] == 1
    rebooked = _reserve(one_spot, *window)
    assert rebooked.status_code == 201, rebooked.content
    assert rebooked.json()["spot"]["label"] == car.spot.label
    assert overlapping_pairs() == 0


def test_a_late_departure_never_holds_the_spot_into_a_booking_already_on_it(clock, one_spot):
    car = _parked(one_spot)
    clock.move_to(START + 30 * MINUTE)  # booked while the car was within its window
    next_one = _confirmed(one_spot, start=END + HOUR)  # 13:00-15:00, on the same spot
    assert next_one.spot_id == car.spot_id

    # No sweep ran (the scheduler was down): the car leaves at 13:30.
    left_at = END + 90 * MINUTE
    clock.move_to(left_at)
    response = _leave(_gate(one_spot), car, left_at)
    assert response.status_code == 200, response.content
    car.refresh_from_db()
    assert car.departed_at == left_at
    assert car.occupied_until == next_one.start
    next_one.refresh_from_db()
    assert (next_one.status, next_one.spot_id) == (Status.CONFIRMED, car.spot_id)
    assert overlapping_pairs() == 0


def test_leaving_after_the_sweep_extended_the_hold_frees_the_spot_from_the_departure(
    clock, one_spot
):
    car = _parked(one_spot)
    clock.move_to(END + 10 * MINUTE)
    overstays_hold_spots()
    car.refresh_from_db()
    assert car.occupied_until == END + 70 * MINUTE  # now + OVERSTAY_LOOKAHEAD_MINUTES

    left_at = END + 40 * MINUTE  # 12:40, before the extended hold runs out
    clock.move_to(left_at)
    assert _leave(_gate(one_spot), car, left_at).status_code == 200
    car.refresh_from_db()
    assert car.occupied_until == left_at

    window = (left_at + 5 * MINUTE, left_at + 65 * MINUTE)
    assert _availability(one_spot, *window)["free_spots"] == 1
    assert _reserve(one_spot, *window).status_code == 201


# --- 2. bookings already on the overstayer's spot ---------------------------------------------


def _booked_behind(lot, car, *, start=END, plate="NEXT-1") -> Reservation:
    """A booking made at 10:30 (the car still within its window) that best fit
    puts on the car's spot."""
    user = UserFactory()
    reservation = _confirmed(lot, start=start, plate=plate, user=user)
    assert reservation.spot_id == car.spot_id
    return reservation


def test_the_sweep_moves_a_booking_off_an_overstayers_spot_and_tells_its_driver(clock, two_spots):
    car = _parked(two_spots)
    clock.move_to(START + 30 * MINUTE)
    behind = _booked_behind(two_spots, car)  # 12:00-14:00 on C-001
    mail.outbox.clear()

    sweep_at = END + 10 * MINUTE
    clock.move_to(sweep_at)
    assert overstays_hold_spots() == 1

    behind.refresh_from_db()
    assert behind.status == Status.CONFIRMED
    assert behind.spot.label == "C-002"
    moved = behind.events.filter(data__has_key="moved_from").get()
    assert moved.data["moved_from"] == "C-001"
    assert moved.data["moved_to"] == "C-002"
    assert moved.at == sweep_at
    # The driver sees the new spot, in the API and in an e-mail.
    seen = _driver_client(behind.user).get(f"/api/v1/reservations/{behind.code}")
    assert seen.json()["spot"]["label"] == "C-002"
    assert [m.to for m in mail.outbox] == [[behind.user.email]]
    assert "C-002" in mail.outbox[0].subject
    assert "C-001" in mail.outbox[0].body

    car.refresh_from_db()
    assert car.spot.label == "C-001"
    assert car.occupied_until == sweep_at + timedelta(minutes=60)
    assert overlapping_pairs() == 0

    # The sweep again: nothing more happens.
    events = behind.events.count()
    assert overstays_hold_spots() == 0
    behind.refresh_from_db()
    assert behind.spot.label == "C-002"
    assert behind.events.count() == events
    assert len(mail.outbox) == 1
    car.refresh_from_db()
    assert car.occupied_until == sweep_at + timedelta(minutes=60)


def test_the_sweep_cancels_a_booking_with_nowhere_to_go_refunds_it_and_tells_its_driver(
    clock, one_spot, stripe
):
    car = _parked(one_spot)
    clock.move_to(START + 30 * MINUTE)
    behind = book(UserFactory(), one_spot, start=END, hours=2, vehicle_plate="NEXT-1")
    assert behind.spot_id == car.spot_id
    reservation_complete(reservation_id=behind.pk, payment_method_id=stripe.card())
    payment = Payment.objects.get(reference=payment_reference(behind))
    assert (payment.status, payment.amount_authorised) == ("authorised", 600)
    mail.outbox.clear()

    sweep_at = END + 10 * MINUTE
    clock.move_to(sweep_at)
    assert overstays_hold_spots() == 1

    behind.refresh_from_db()
    assert (behind.status, behind.amount_due) == (Status.CANCELLED, 0)
    cancelled = behind.events.get(to_status=Status.CANCELLED)
    assert cancelled.data["reason"] == "displaced_by_overstay"
    assert cancelled.at == sweep_at
    seen = _driver_client(behind.user).get(f"/api/v1/reservations/{behind.code}")
    assert seen.json()["status"] == "cancelled"
    assert [m.to for m in mail.outbox] == [[behind.user.email]]
    assert behind.code in mail.outbox[0].subject
    # Nothing charged: the card hold is released, in our records and in Stripe's.
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("canceled", 0)
    assert stripe.kept(payment.payment_intent_id) == 0

    car.refresh_from_db()
    assert car.occupied_until == sweep_at + timedelta(minutes=60)

    events = behind.events.count()
    assert overstays_hold_spots() == 0
    assert behind.events.count() == events
    assert len(mail.outbox) == 1
    assert overlapping_pairs() == 0


def test_a_booking_beyond_the_lookahead_is_moved_by_a_later_sweep(clock, two_spots):
    car = _parked(two_spots)
    clock.move_to(START + 30 * MINUTE)
    later = _booked_behind(two_spots, car, start=END + 2 * HOUR)  # 14:00-16:00 on C-001

    clock.move_to(END + 10 * MINUTE)  # looks ahead to 13:10
    assert overstays_hold_spots() == 0
    later.refresh_from_db()
    assert later.spot.label == "C-001"
    car.refresh_from_db()
    assert car.occupied_until == END + 70 * MINUTE

    clock.move_to(END + 65 * MINUTE)  # looks ahead to 14:05: the booking is in the way
    assert overstays_hold_spots() == 1
    later.refresh_from_db()
    assert later.spot.label == "C-002"
    car.refresh_from_db()
    assert car.occupied_until == END + 125 * MINUTE
    assert overlapping_pairs() == 0


def test_an_arrival_at_a_spot_that_still_has_a_car_in_it_is_given_another_free_spot(
    clock, two_spots
):
    car = _parked(two_spots)
    clock.move_to(START + 30 * MINUTE)
    behind = _booked_behind(two_spots, car)

    arrived_at = END + 10 * MINUTE  # no sweep ran: the booking is still on C-001
    clock.move_to(arrived_at)
    response = _arrive(_gate(two_spots), behind, arrived_at)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "parked"
    assert body["spot"]["label"] == "C-002"
    event = behind.events.get(to_status=Status.PARKED)
    assert (event.data["moved_from"], event.data["moved_to"]) == ("C-001", "C-002")
    car.refresh_from_db()
    assert (car.status, car.spot.label) == (Status.PARKED, "C-001")
    assert overlapping_pairs() == 0


def test_an_arrival_at_an_occupied_spot_with_no_other_free_is_refused_and_given_back_in_full(
    clock, one_spot
):
    """The lot failed the driver: the booking is cancelled with nothing to pay
    (never left confirmed, to be charged as a no-show later), staff see it."""
    car = _parked(one_spot)
    clock.move_to(START + 30 * MINUTE)
    behind = _booked_behind(one_spot, car)

    arrived_at = END + 10 * MINUTE
    clock.move_to(arrived_at)
    response = _arrive(_gate(one_spot), behind, arrived_at)

    assert (response.status_code, response.json()["code"]) == (409, "spot_occupied")
    assert "everything paid is given back" in response.json()["detail"]
    behind.refresh_from_db()
    assert (behind.status, behind.amount_due, behind.arrived_at) == (Status.CANCELLED, 0, None)
    assert behind.events.last().data["reason"] == "displaced_by_overstay"
    assert not behind.events.filter(to_status=Status.PARKED).exists()
    assert no_shows_declare(now=arrived_at + 2 * HOUR) == 0


def test_availability_counts_the_spot_an_arrival_was_moved_to_at_once(clock, two_spots):
    car = _parked(two_spots)
    clock.move_to(START + 30 * MINUTE)
    behind = _booked_behind(two_spots, car)  # 12:00-14:00 on C-001, behind the car

    arrived_at = END + 10 * MINUTE
    clock.move_to(arrived_at)
    window = (arrived_at + 5 * MINUTE, arrived_at + 65 * MINUTE)
    assert _availability(two_spots, *window)["free_spots"] == 1  # C-002, and now cached

    assert _arrive(_gate(two_spots), behind, arrived_at).json()["spot"]["label"] == "C-002"

    # Both spots now have a car in them: no reader may be told otherwise.
    answer = _availability(two_spots, *window)
    assert (answer["is_free"], answer["free_spots"]) == (False, 0)
    assert _reserve(two_spots, *window).status_code == 409


def test_availability_is_exact_when_a_car_arrives_just_before_its_end_and_stays(clock, one_spot):
    reservation = _confirmed(one_spot, start=START)
    later = (END + 30 * MINUTE, END + 90 * MINUTE)

    clock.move_to(END - 30 * timedelta(seconds=1))  # 11:59:30, nobody has arrived
    assert _availability(one_spot, *later)["free_spots"] == 1

    arrived_at = END - 20 * timedelta(seconds=1)  # the car arrives at 11:59:40…
    clock.move_to(arrived_at)
    assert _arrive(_gate(one_spot), reservation, arrived_at).json()["status"] == "parked"

    clock.move_to(END + 10 * timedelta(seconds=1))  # …and is still in at 12:00:10
    answer = _availability(one_spot, *later)
    assert (answer["is_free"], answer["free_spots"]) == (False, 0)


# --- 5. exits the gate never reported ---------------------------------------------------------


def _paid_and_parked(stripe, lot) -> tuple[Reservation, Payment]:
    reservation = book(UserFactory(), lot, start=START, hours=2, vehicle_plate="GONE-1")
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())
    reservation_arrive(reservation_id=reservation.pk, at=START)
    reservation.refresh_from_db()
    payment = Payment.objects.get(reference=payment_reference(reservation), kind="booking")
    assert (payment.status, payment.amount_authorised) == ("authorised", 600)
    return reservation, payment


def test_an_exit_the_gate_never_reported_has_its_price_captured_once_when_due(
    clock, one_spot, stripe, settings
):
    reservation, payment = _paid_and_parked(stripe, one_spot)
    due = END + timedelta(minutes=settings.UNREPORTED_EXIT_CAPTURE_MINUTES)

    clock.move_to(due - MINUTE)
    assert unreported_exits_capture() == 0
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("authorised", 0)
    assert stripe.kept(payment.payment_intent_id) == 0

    clock.move_to(due)
    assert unreported_exits_capture() == 1
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("captured", 600)
    assert stripe.kept(payment.payment_intent_id) == 600
    event = reservation.events.get(data__has_key="captured")
    assert (event.data["captured"], event.at) == (600, due)

    clock.move_to(due + 5 * MINUTE)
    assert unreported_exits_capture() == 0  # never twice
    payment.refresh_from_db()
    assert payment.amount_captured == 600
    assert stripe.kept(payment.payment_intent_id) == 600
    assert reservation.events.filter(data__has_key="captured").count() == 1
    reservation.refresh_from_db()
    assert reservation.status == Status.PARKED  # staff still see the car in the lot


def test_a_departure_reported_after_the_capture_charges_only_the_overstay(
    clock, one_spot, stripe, settings
):
    reservation, payment = _paid_and_parked(stripe, one_spot)
    clock.move_to(END + timedelta(minutes=settings.UNREPORTED_EXIT_CAPTURE_MINUTES))
    assert unreported_exits_capture() == 1

    left_at = END + 3 * HOUR + 10 * MINUTE  # 4 started hours over at $3
    clock.move_to(left_at)
    response = _leave(_gate(one_spot), reservation, left_at)

    assert response.status_code == 200, response.content
    charges = response.json()["charges"]
    assert charges["price"]["amount"] == 600
    assert charges["overstay"]["amount"] == 1200
    booking = Payment.objects.get(pk=payment.pk)
    overstay = Payment.objects.get(reference=payment_reference(reservation), kind="overstay")
    assert (booking.status, booking.amount_captured, booking.amount_refunded) == (
        "captured",
        600,
        0,
    )
    assert (overstay.status, overstay.amount_captured) == ("captured", 1200)
    assert overstay.payment_intent_id != booking.payment_intent_id
    assert stripe.kept(booking.payment_intent_id) == 600
    assert stripe.kept(overstay.payment_intent_id) == 1200
    reservation.refresh_from_db()
    assert reservation.settlement == "settled"


# --- 6. what staff see ------------------------------------------------------------------------


def test_the_occupancy_view_shows_an_overstaying_car_parked_in_its_spot_after_its_end(clock, lot):
    car = _parked(lot)  # 11:00-13:00 in Paris
    now = END + 90 * MINUTE  # 14:30 in Paris, the car still in
    clock.move_to(now)

    occupancy = lot_occupancy(lot=lot, day=date(2026, 3, 4), now=now)

    row = next(r for r in occupancy.rows if r.spot_id == car.spot_id)
    by_hour = dict(zip((h.label for h in occupancy.hours), row.cells, strict=True))
    for hour in ("11:00", "12:00", "13:00", "14:00"):
        assert by_hour[hour] == PARKED, hour
    assert by_hour["15:00"] == FREE
    parked = [bar for bar in row.bars if bar.kind == PARKED]
    assert [(bar.code, bar.start, bar.end) for bar in parked] == [(car.code, START, now)]
    stats = {h.label: h for h in occupancy.hours}
    assert (stats["13:00"].parked, stats["14:00"].parked) == (1, 1)
    departures = [m for m in occupancy.departures if m.code == car.code]
    assert [(m.due, m.actual, m.status) for m in departures] == [(END, None, Status.PARKED)]


def test_a_car_that_overstays_past_midnight_shows_parked_all_the_next_day_until_now(clock, lot):
    yesterday = NOW - timedelta(days=1)  # Tuesday 11:00-13:00 in Paris
    clock.move_to(yesterday)
    car = reservation_arrive(
        reservation_id=_confirmed(lot, start=yesterday, plate="NIGHT-1").pk, at=yesterday
    ).reservation
    now = END + 90 * MINUTE  # Wednesday 14:30 in Paris, the car never left
    clock.move_to(now)

    occupancy = lot_occupancy(lot=lot, day=date(2026, 3, 4), now=now)

    row = next(r for r in occupancy.rows if r.spot_id == car.spot_id)
    assert row.cells[:15] == [PARKED] * 15  # 00:00 to 14:00
    assert set(row.cells[15:]) == {FREE}
    assert [(bar.start, bar.end) for bar in row.bars if bar.kind == PARKED] == [
        (occupancy.start, now)
    ]
    assert all(hour.parked == 1 for hour in occupancy.hours[:15])


# --- a car that stays on into its own next booking -------------------------------------------


def test_a_car_that_stays_on_into_its_own_next_booking_is_charged_once_for_each_hour(
    clock, two_spots
):
    """Back-to-back bookings of one car (10-12, then 12-14 on another spot): the
    car never leaves. Its next booking is not moved away from it, not declared a
    no-show, and no hour is charged twice."""
    first = _parked(two_spots, plate="SAME-1")
    second = _confirmed(two_spots, start=END, plate="SAME-1")
    assert second.spot_id == first.spot_id  # best fit: right after it

    clock.move_to(END + MINUTE)
    assert overstays_hold_spots() == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.departed_at, first.overstay_amount) == (
        Status.COMPLETED,
        END,
        0,
    )
    assert (second.status, second.arrived_at, second.spot_id) == (
        Status.PARKED,
        END,
        first.spot_id,  # in the spot the car is in
    )
    clock.move_to(END + 3 * HOUR)
    assert no_shows_declare() == 0
    assert first.amount_due == 600
    assert not [m for m in mail.outbox if "has not left" in m.body]


def test_a_car_staying_on_is_given_its_next_booking_in_the_spot_it_is_in(clock, two_spots):
    first = _parked(two_spots, plate="SAME-2")
    someone = _confirmed(two_spots, start=END, hours=1)  # takes C-001 after the car
    second = _confirmed(two_spots, start=END, plate="SAME-2")
    assert (someone.spot_id, second.spot_id != first.spot_id) == (first.spot_id, True)
    reservation_cancel(reservation_id=someone.pk)

    clock.move_to(END + MINUTE)
    overstays_hold_spots()
    second.refresh_from_db()
    assert (second.status, second.spot_id) == (Status.PARKED, first.spot_id)
    assert second.events.last().data["moved_to"] == "C-001"


def test_the_gap_between_a_cars_two_bookings_is_an_overstay(clock, two_spots):
    first = _parked(two_spots, plate="GAP-1")
    second = _confirmed(two_spots, start=END + 30 * MINUTE, plate="GAP-1")

    assert second.spot_id == first.spot_id

    clock.move_to(END + 10 * MINUTE)
    overstays_hold_spots()  # still only overstaying: its next booking has not begun
    second.refresh_from_db()
    assert (second.status, second.spot_id) == (Status.CONFIRMED, first.spot_id)  # not moved

    clock.move_to(END + 31 * MINUTE)
    overstays_hold_spots()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.departed_at, first.overstay_amount) == (
        Status.COMPLETED,
        END + 30 * MINUTE,
        300,  # one started hour at the booked rate
    )
    assert (second.status, second.arrived_at) == (Status.PARKED, END + 30 * MINUTE)
