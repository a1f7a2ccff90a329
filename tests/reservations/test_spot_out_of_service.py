"""Taking a spot out of service never leaves a reservation on a dead spot: its
reservations to come move to free spots of the same type (best fit, for their
whole window), or nothing changes and the refusal says which could not move."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.db import connections
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from config.errors import ApplicationError
from lots.models import Lot, Spot
from parking.models import User
from reservations.allocation import live_blocking_q
from reservations.models import BLOCKING_STATUSES, Reservation, Status
from reservations.services import (
    NoSpotAvailable,
    NoSpotToMoveTo,
    SpotHasReservations,
    reservation_create,
    spot_take_out_of_service,
)
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.reservations.helpers import overlapping_pairs

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_superuser(email="boss@example.com", password="x-secret-pw")


def spot(lot: Lot, label: str) -> Spot:
    return lot.spots.get(label=label)


def place(
    spot: Spot,
    start_in_hours: float,
    hours: float = 2,
    status: str = Status.CONFIRMED,
    **fields,
) -> Reservation:
    """A reservation on this very spot (the booking service would choose one)."""
    start = timezone.now() + timedelta(hours=start_in_hours)
    end = start + timedelta(hours=hours)
    fields.setdefault("occupied_until", end)
    if status == Status.PENDING_PAYMENT:
        fields.setdefault("hold_expires_at", timezone.now() + timedelta(minutes=15))
    return Reservation.objects.create(
        user=UserFactory(),
        lot=spot.lot,
        spot=spot,
        vehicle_type=spot.vehicle_type,
        start=start,
        end=end,
        status=status,
        price_amount=500,
        currency=spot.lot.currency,
        **fields,
    )


def version(lot: Lot) -> int:
    return Lot.objects.get(pk=lot.pk).availability_version


def assert_no_overlaps(lot: Lot) -> None:
    now = timezone.now()
    rows = list(Reservation.objects.filter(lot=lot).filter(live_blocking_q(now)))
    for a in rows:
        for b in rows:
            if a.pk < b.pk and a.spot_id == b.spot_id:
                assert not (a.start < b.occupied_until and b.start < a.occupied_until), (a, b)
        assert a.spot.is_active or a.occupied_until <= now, a


def test_a_spot_with_nothing_to_come_goes_out_of_service(lot, staff):
    c1 = spot(lot, "C-001")
    past = place(c1, -5, 2, status=Status.COMPLETED)  # over: does not hold the spot
    place(c1, 3, status=Status.CANCELLED)  # blocks nothing
    before = version(lot)

    result = spot_take_out_of_service(spot_id=c1.pk, actor_user=staff, move_reservations=False)

    c1.refresh_from_db()
    assert result.changed
    assert result.moved == ()
    assert not c1.is_active
    assert version(lot) == before + 1  # cached availability is stale now
    past.refresh_from_db()
    assert past.spot_id == c1.pk  # history stays where it happened


def test_reservations_to_come_move_to_a_free_spot_of_the_same_type(lot, staff):
    c1, c2, c3 = (spot(lot, label) for label in ("C-001", "C-002", "C-003"))
    SpotFactory(lot=lot, label="C-000", vehicle_type="van")  # free, but the wrong type
    place(c2, 1, 2)  # C-002 is busy from +1h to +3h
    first = place(c1, 2, 2)  # +2h..+4h: C-002 overlaps, so C-003
    second = place(c1, 5, 3)  # +5h..+8h: C-002 right after its booking fits best
    now_running = place(c1, -0.5, 2)  # started, driver not arrived yet (within grace)

    result = spot_take_out_of_service(spot_id=c1.pk, actor_user=staff, move_reservations=True)

    c1.refresh_from_db()
    assert not c1.is_active
    moves = {(m.code, m.moved_from, m.moved_to) for m in result.moved}
    for reservation in (first, second, now_running):
        reservation.refresh_from_db()
        assert reservation.spot.is_active
        assert reservation.spot.vehicle_type == "car"
        assert reservation.spot_id != c1.pk
        assert (reservation.code, "C-001", reservation.spot.label) in moves
        event = reservation.events.get()
        assert event.data == {"moved_from": "C-001", "moved_to": reservation.spot.label}
        assert (event.actor, event.actor_user) == ("staff", staff)
        assert event.from_status == event.to_status == Status.CONFIRMED
    # Best fit, in order of start: C-002 is busy for the first two, and then
    # C-003's bookings leave the smaller gap before the third (1 h, not 2 h).
    assert (now_running.spot, first.spot, second.spot) == (c3, c3, c3)
    assert len(moves) == 3
    assert_no_overlaps(lot)


def test_it_refuses_and_changes_nothing_when_one_cannot_move(lot, staff):
    c1, c2, c3 = (spot(lot, label) for label in ("C-001", "C-002", "C-003"))
    movable = place(c1, 1, 2)  # C-002 is free then
    stuck = place(c1, 10, 2)  # C-002 and C-003 are both taken then
    place(c2, 9, 4)
    place(c3, 11, 4)
    before = version(lot)

    with pytest.raises(NoSpotToMoveTo) as refused:
        spot_take_out_of_service(spot_id=c1.pk, actor_user=staff, move_reservations=True)

    assert refused.value.code == "no_spot_to_move_to"
    assert refused.value.status == 409
    assert stuck.code in refused.value.detail
    assert movable.code not in refused.value.detail
    assert "C-001 stays in service" in refused.value.detail
    c1.refresh_from_db()
    assert c1.is_active
    for reservation in (movable, stuck):
        reservation.refresh_from_db()
        assert reservation.spot_id == c1.pk  # all or nothing: the movable one stayed too
        assert not reservation.events.exists()
    assert version(lot) == before


def test_it_refuses_when_asked_not_to_move_reservations(lot, staff):
    c1 = spot(lot, "C-001")
    to_come = place(c1, 24, 2)
    held = place(c1, 30, 2, status=Status.PENDING_PAYMENT)

    with pytest.raises(SpotHasReservations) as refused:
        spot_take_out_of_service(spot_id=c1.pk, actor_user=staff, move_reservations=False)

    assert refused.value.code == "spot_has_reservations"
    assert to_come.code in refused.value.detail
    assert held.code in refused.value.detail
    c1.refresh_from_db()
    assert c1.is_active


def test_a_car_parked_in_the_spot_refuses_it(lot, staff):
    c1 = spot(lot, "C-001")
    parked = place(c1, -1, 3, status=Status.PARKED, arrived_at=timezone.now() - H)

    with pytest.raises(SpotHasReservations) as refused:
        spot_take_out_of_service(spot_id=c1.pk, actor_user=staff, move_reservations=True)

    assert refused.value.code == "spot_in_use"
    assert parked.code in refused.value.detail
    c1.refresh_from_db()
    assert c1.is_active
    parked.refresh_from_db()
    assert parked.spot_id == c1.pk


def test_lapsed_unpaid_holds_are_expired_not_moved(lot, staff):
    c1 = spot(lot, "C-001")
    lapsed = place(
        c1,
        2,
        status=Status.PENDING_PAYMENT,
        hold_expires_at=timezone.now() - timedelta(minutes=1),
    )

    result = spot_take_out_of_service(spot_id=c1.pk, actor_user=staff, move_reservations=False)

    assert result.expired == (lapsed.code,)
    lapsed.refresh_from_db()
    assert lapsed.status == Status.EXPIRED
    assert lapsed.amount_due == 0
    assert lapsed.events.get().to_status == Status.EXPIRED


def test_a_lapsed_hold_on_the_target_spot_does_not_stop_a_move(lot, staff):
    c1, c2, c3 = (spot(lot, label) for label in ("C-001", "C-002", "C-003"))
    reservation = place(c1, 2, 2)
    place(c3, 1, 6)  # C-003 taken
    lapsed = place(c2, 2, 2, status=Status.PENDING_PAYMENT, hold_expires_at=timezone.now() - H)

    spot_take_out_of_service(spot_id=c1.pk, actor_user=staff, move_reservations=True)

    reservation.refresh_from_db()
    lapsed.refresh_from_db()
    assert reservation.spot == c2
    assert lapsed.status == Status.EXPIRED  # as allocation does with holds it meets
    assert_no_overlaps(lot)


def test_a_spot_already_out_of_service_is_left_alone(lot, staff):
    c1 = spot(lot, "C-001")
    Spot.objects.filter(pk=c1.pk).update(is_active=False)
    before = version(lot)
    result = spot_take_out_of_service(spot_id=c1.pk, actor_user=staff, move_reservations=True)
    assert not result.changed
    assert version(lot) == before


def test_a_moved_booking_keeps_everything_but_its_spot_and_new_bookings_avoid_the_dead_spot(
    lot, staff, driver
):
    start = timezone.now() + 2 * H
    booked = reservation_create(
        user=driver, lot_id=lot.slug, vehicle_type="car", start=start, end=start + 2 * H
    ).reservation
    old_spot = booked.spot
    before = Reservation.objects.values().get(pk=booked.pk)

    spot_take_out_of_service(spot_id=old_spot.pk, actor_user=staff, move_reservations=True)

    after = Reservation.objects.values().get(pk=booked.pk)
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {"spot_id", "updated_at"}
    # The two spots left hold the moved booking and one more; the dead one takes none.
    other = reservation_create(
        user=driver, lot_id=lot.slug, vehicle_type="car", start=start, end=start + 2 * H
    ).reservation
    assert other.spot_id not in (old_spot.pk, after["spot_id"])
    with pytest.raises(NoSpotAvailable):
        reservation_create(
            user=driver, lot_id=lot.slug, vehicle_type="car", start=start, end=start + 2 * H
        )
    assert not Reservation.objects.filter(
        Q(spot=old_spot), Q(status__in=BLOCKING_STATUSES), occupied_until__gt=timezone.now()
    ).exists()


# --- in the admin -----------------------------------------------------------------------


def run(client, action: str, *spots: Spot):
    response = client.post(
        reverse("admin:lots_spot_changelist"),
        {"action": action, "_selected_action": [s.pk for s in spots]},
        follow=True,
    )
    assert response.status_code == 200
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def test_the_admin_action_moves_and_reports_each_move(client, lot, staff):
    client.force_login(staff)
    c1, c2 = spot(lot, "C-001"), spot(lot, "C-002")
    reservation = place(c1, 2, 2)
    place(spot(lot, "C-003"), 1, 4)
    place(c1, -5, 2, status=Status.COMPLETED)  # over: not to come
    listing = client.get(reverse("admin:lots_spot_changelist"))
    assert "Reservations to come" in listing.content.decode()
    to_come = {row.label: row.to_come for row in listing.context["cl"].result_list}
    assert to_come == {"C-001": 1, "C-002": 0, "C-003": 1}

    found = run(client, "take_out_moving", c1)

    assert found == [
        ("success", f"C-001: Taken out of service. Moved {reservation.code} to C-002.")
    ]
    reservation.refresh_from_db()
    assert reservation.spot == c2
    spot_log = LogEntry.objects.get(content_type__model="spot", object_id=str(c1.pk))
    assert spot_log.user == staff
    assert reservation.code in spot_log.get_change_message()
    reservation_log = LogEntry.objects.get(
        content_type__model="reservation", object_id=str(reservation.pk)
    )
    assert reservation_log.get_change_message().startswith("Moved from spot C-001 to C-002")


def test_the_admin_action_refuses_with_a_clear_message(client, lot, staff):
    client.force_login(staff)
    c1, c2 = spot(lot, "C-001"), spot(lot, "C-002")
    reservation = place(c1, 2, 2)

    found = run(client, "take_out_if_free", c1, c2)

    assert ("success", "C-002: Taken out of service. It had no reservations to come.") in found
    [(level, text)] = [m for m in found if m[1].startswith("C-001")]
    assert level == "error"
    assert text.startswith("C-001: left in service.")
    assert reservation.code in text
    c1.refresh_from_db()
    assert c1.is_active
    assert not LogEntry.objects.filter(content_type__model="spot", object_id=str(c1.pk)).exists()


# --- under real concurrency ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_taking_a_spot_out_while_drivers_race_for_spots_leaves_nothing_on_it():
    """Threads, each with its own connection: drivers book the windows the
    moved reservations need while staff take their spot out of service. Either
    the spot goes out with every reservation moved, or it stays in with none
    moved; never a reservation on a dead spot, never an overlap."""
    lot = LotFactory(timezone="Europe/Paris", currency="eur")
    RateFactory(lot=lot, vehicle_type="car")
    spots = [SpotFactory(lot=lot, label=f"C-{n:03}") for n in range(1, 7)]
    dead = spots[0]
    staff = UserFactory(email="staff@example.com", is_staff=True)
    to_move = [place(dead, 3, 2), place(dead, 8, 2)]
    drivers = UserFactory.create_batch(10)
    start = timezone.now() + timedelta(hours=3, minutes=30)

    def book(driver):
        def job():
            try:
                return reservation_create(
                    user=driver, lot_id=lot.slug, vehicle_type="car", start=start, end=start + H
                ).reservation.code
            except ApplicationError as exc:
                return exc.code

        return job

    def take_out():
        try:
            spot_take_out_of_service(spot_id=dead.pk, actor_user=staff, move_reservations=True)
        except ApplicationError as exc:
            return exc.code
        return "out"

    jobs = [book(driver) for driver in drivers] + [take_out]
    barrier = threading.Barrier(len(jobs))

    def run(job):
        try:
            barrier.wait(timeout=30)
            return job()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        outcomes = list(pool.map(run, jobs))

    taken_out = outcomes[-1]
    assert taken_out in ("out", "no_spot_to_move_to"), taken_out
    assert set(outcomes[:-1]) - {"no_spot_available"}, "somebody booked"
    assert overlapping_pairs() == 0
    dead.refresh_from_db()
    on_dead = Reservation.objects.filter(
        spot=dead, status__in=BLOCKING_STATUSES, occupied_until__gt=timezone.now()
    )
    if taken_out == "out":
        assert not dead.is_active
        assert not on_dead.exists()
    else:
        assert dead.is_active
        assert set(on_dead.values_list("pk", flat=True)) == {r.pk for r in to_move}
