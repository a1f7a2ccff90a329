"""Facts of the database that /metrics reads when asked (holds open, cars
parked, settlements open, how far behind the sweeps are): right, and in a fixed
number of queries however many reservations there are."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from payments.metrics import facts as payment_facts
from reservations.metrics import facts as reservation_facts
from reservations.models import Reservation, Settlement, Status
from reservations.services import holds_expire_lapsed, reservation_confirm
from tests.factories import LotFactory, RateFactory, SpotFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db(transaction=True)


def _facts(now) -> dict[tuple[str, tuple], float]:
    values = {}
    for family in [*reservation_facts(now), *payment_facts(now)]:
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _book_at(driver, lot, *, start, hours: float = 1, **changes) -> Reservation:
    """Booked an hour before `start` (perhaps in the past), then moved on to `changes`."""
    with time_machine.travel(start - timedelta(hours=1)):
        reservation = book(driver, lot, start=start, hours=hours)
    Reservation.objects.filter(pk=reservation.pk).update(**changes)
    return reservation


def _fill(lot, driver, *, now, n: int) -> None:
    """n of each: unpaid holds, lapsed holds, parked cars (half overstaying),
    settlements pending or needing attention, confirmed bookings past grace."""
    for i in range(n):
        day = timedelta(days=2 * i + 1)
        book(driver, lot, start=now + day)  # an open hold
        _book_at(driver, lot, start=now + day + timedelta(hours=5))
        _book_at(
            driver,
            lot,
            start=now + day + timedelta(hours=9),
            hold_expires_at=now - timedelta(minutes=3),
        )
        _book_at(
            driver,
            lot,
            start=now - timedelta(hours=3) - day,
            hours=2 + (24 * 2 * n) * (i % 2),
            status=Status.PARKED,
            hold_expires_at=None,
        )
        _book_at(
            driver,
            lot,
            start=now - day - timedelta(hours=20),
            status=Status.COMPLETED,
            hold_expires_at=None,
            settlement=Settlement.ATTENTION if i % 2 else Settlement.PENDING,
            settlement_next_at=now - timedelta(minutes=10),
            amount_due=0,
        )
        _book_at(
            driver,
            lot,
            start=now - day - timedelta(hours=30),
            status=Status.CONFIRMED,
            hold_expires_at=None,
        )


def test_the_database_facts_take_six_queries_however_many_reservations(
    django_assert_num_queries, driver
):
    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory.create_batch(12, lot=lot)
    now = timezone.now()
    _fill(lot, driver, now=now, n=2)

    with django_assert_num_queries(6):
        few = _facts(now)
    _fill(lot, driver, now=now + timedelta(days=10), n=6)
    with django_assert_num_queries(6):
        many = _facts(now)

    assert few[("parkspot_holds_open", ())] == 4
    assert few[("parkspot_cars_parked", ())] == 2
    assert few[("parkspot_cars_overstaying", ())] == 1
    assert few[("parkspot_settlements_pending", ())] == 1
    assert few[("parkspot_settlements_needing_attention", ())] == 1
    assert many[("parkspot_settlements_needing_attention", ())] == 4


def test_overdue_work_grows_while_it_waits_and_falls_once_the_sweep_has_run(driver, lot):
    now = timezone.now()
    held = book(driver, lot, start=now + timedelta(hours=2))
    age = ("parkspot_sweep_overdue_seconds", (("sweep", "expire_lapsed_holds"),))
    assert _facts(now)[age] == 0

    lapsed_for_ten_minutes = held.hold_expires_at + timedelta(minutes=10)
    assert _facts(lapsed_for_ten_minutes)[age] == pytest.approx(600)
    with time_machine.travel(lapsed_for_ten_minutes):
        holds_expire_lapsed()
    assert _facts(lapsed_for_ten_minutes)[age] == 0


def test_a_no_show_waiting_for_the_sweep_ages_by_its_lots_own_grace(driver):
    lot = LotFactory(no_show_grace_minutes=15)
    RateFactory(lot=lot)
    SpotFactory(lot=lot)
    now = timezone.now()
    absent = book(driver, lot, start=now + timedelta(hours=1))
    reservation_confirm(reservation_id=absent.pk)
    age = ("parkspot_sweep_overdue_seconds", (("sweep", "declare_no_shows"),))

    assert _facts(absent.start + timedelta(minutes=14))[age] == 0
    assert _facts(absent.start + timedelta(minutes=20))[age] == pytest.approx(300)


def test_sweep_age_is_the_time_since_each_sweep_last_ran():
    from reservations.services import sweep_record

    now = timezone.now()
    sweep_record(name="expire_lapsed_holds", now=now - timedelta(seconds=90))
    sweep_record(name="settle_payments", now=now - timedelta(seconds=5))

    facts = _facts(now)
    assert facts[("parkspot_sweep_age_seconds", (("sweep", "expire_lapsed_holds"),))] == 90
    assert facts[("parkspot_sweep_age_seconds", (("sweep", "settle_payments"),))] == 5
    never = ("parkspot_sweep_age_seconds", (("sweep", "declare_no_shows"),))
    assert never not in facts  # never ran: nothing to be old
