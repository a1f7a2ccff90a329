"""Every arrow of the reservation state machine (DESIGN §4), and the illegal ones."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from config.errors import Conflict
from reservations.models import Status
from reservations.selectors import lot_availability
from reservations.services import (
    IllegalTransition,
    reservation_arrive,
    reservation_cancel,
    reservation_confirm,
    reservation_depart,
    reservation_expire,
    reservation_mark_no_show,
)
from tests.factories import UserFactory
from tests.reservations.helpers import book, overlapping_pairs

pytestmark = pytest.mark.django_db


@pytest.fixture
def start():
    return timezone.now() + timedelta(hours=1)


@pytest.fixture
def pending(lot, driver, start):
    return book(driver, lot, start=start, hours=4)


@pytest.fixture
def confirmed(pending):
    return reservation_confirm(reservation_id=pending.pk).reservation


def _history(reservation):
    return [(e.from_status, e.to_status, e.actor) for e in reservation.events.all()]


def test_paying_confirms_and_ends_the_hold(pending):
    result = reservation_confirm(reservation_id=pending.pk)
    assert result.changed
    assert result.reservation.status == Status.CONFIRMED
    assert result.reservation.hold_expires_at is None
    assert _history(pending)[-1] == ("pending_payment", "confirmed", "payment")


def test_paying_after_the_hold_lapsed_is_refused(pending):
    lapsed = pending.hold_expires_at + timedelta(seconds=1)
    with time_machine.travel(lapsed), pytest.raises(Conflict) as exc:
        reservation_confirm(reservation_id=pending.pk)
    assert exc.value.code == "hold_expired"
    pending.refresh_from_db()
    assert pending.status == Status.PENDING_PAYMENT


def test_a_full_visit_arrive_then_leave_on_time(confirmed, start):
    reservation_arrive(reservation_id=confirmed.pk, at=start - timedelta(minutes=10))
    done = reservation_depart(reservation_id=confirmed.pk, at=confirmed.end).reservation
    assert done.status == Status.COMPLETED
    assert done.occupied_until == confirmed.end
    assert [to for _, to, _ in _history(done)] == [
        "pending_payment",
        "confirmed",
        "parked",
        "completed",
    ]


def test_leaving_early_frees_the_rest_of_the_window(lot, confirmed, start):
    reservation_arrive(reservation_id=confirmed.pk, at=start)
    left_at = start + timedelta(hours=1)
    done = reservation_depart(reservation_id=confirmed.pk, at=left_at).reservation
    assert done.occupied_until == left_at

    # Someone else can now book exactly that spot for the rest of the window.
    lot.spots.exclude(pk=done.spot_id).update(is_active=False)
    later = book(UserFactory(), lot, start=left_at, hours=3)
    assert later.spot_id == done.spot_id
    assert overlapping_pairs() == 0


def test_arrival_is_accepted_only_from_early_arrival_until_the_end(confirmed, start):
    with pytest.raises(Conflict) as exc:
        reservation_arrive(reservation_id=confirmed.pk, at=start - timedelta(minutes=16))
    assert exc.value.code == "too_early"
    with pytest.raises(Conflict) as exc:
        reservation_arrive(reservation_id=confirmed.pk, at=confirmed.end)
    assert exc.value.code == "too_late"
    assert reservation_arrive(reservation_id=confirmed.pk, at=start - timedelta(minutes=15)).changed


def test_a_gate_repeating_an_arrival_gets_the_same_answer(confirmed, start):
    first = reservation_arrive(reservation_id=confirmed.pk, at=start)
    again = reservation_arrive(reservation_id=confirmed.pk, at=start + timedelta(minutes=1))
    assert first.changed
    assert not again.changed
    assert again.reservation.arrived_at == start
    assert confirmed.events.filter(to_status=Status.PARKED).count() == 1


def test_a_no_show_releases_the_rest_of_the_window(confirmed, start):
    with pytest.raises(Conflict) as exc:
        reservation_mark_no_show(reservation_id=confirmed.pk, at=start + timedelta(minutes=59))
    assert exc.value.code == "grace_not_over"

    declared_at = start + timedelta(minutes=60)
    result = reservation_mark_no_show(reservation_id=confirmed.pk, at=declared_at)
    assert result.reservation.status == Status.NO_SHOW
    assert result.reservation.occupied_until == declared_at
    assert not reservation_mark_no_show(reservation_id=confirmed.pk, at=declared_at).changed
    assert _history(confirmed)[-1] == ("confirmed", "no_show", "scheduler")


def test_the_lot_can_shorten_the_no_show_grace(lot, confirmed, start):
    lot.no_show_grace_minutes = 20
    lot.save()
    result = reservation_mark_no_show(reservation_id=confirmed.pk, at=start + timedelta(minutes=20))
    assert result.reservation.status == Status.NO_SHOW


def test_an_unpaid_hold_expires_only_once_it_has_lapsed(pending):
    with pytest.raises(Conflict) as exc:
        reservation_expire(reservation_id=pending.pk)
    assert exc.value.code == "hold_active"
    with time_machine.travel(pending.hold_expires_at):
        assert reservation_expire(reservation_id=pending.pk).reservation.status == Status.EXPIRED


@pytest.mark.parametrize("state", ["pending", "confirmed"])
def test_a_driver_may_cancel_before_parking(request, state, driver):
    reservation = request.getfixturevalue(state)
    result = reservation_cancel(reservation_id=reservation.pk, actor_user=driver)
    assert result.reservation.status == Status.CANCELLED
    event = reservation.events.last()
    assert (event.actor, event.actor_user) == ("driver", driver)
    assert not reservation_cancel(reservation_id=reservation.pk, actor_user=driver).changed


def test_illegal_transitions_are_conflicts_and_change_nothing(confirmed, start):
    reservation_arrive(reservation_id=confirmed.pk, at=start)
    for attempt in (
        lambda: reservation_cancel(reservation_id=confirmed.pk),
        lambda: reservation_expire(reservation_id=confirmed.pk),
        lambda: reservation_mark_no_show(
            reservation_id=confirmed.pk, at=start + timedelta(hours=2)
        ),
    ):
        with pytest.raises(IllegalTransition) as exc:
            attempt()
        assert (exc.value.status, exc.value.code) == (409, "illegal_transition")
    confirmed.refresh_from_db()
    assert confirmed.status == Status.PARKED
    assert confirmed.events.count() == 3


def test_every_release_is_seen_by_the_next_availability_answer(lot, driver, start):
    window = {
        "lot_id": lot.slug,
        "vehicle_type": "car",
        "start": start,
        "end": start + timedelta(hours=4),
    }
    assert lot_availability(**window).free_spots == 3
    reservation = book(driver, lot, start=start, hours=4)
    assert lot_availability(**window).free_spots == 2
    reservation_cancel(reservation_id=reservation.pk)
    assert lot_availability(**window).free_spots == 3
