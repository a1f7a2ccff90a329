"""The bench database's own SQL: the long history it seeds and the overlap check."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from bench import database
from reservations.models import BLOCKING_STATUSES, Reservation, Status
from tests.factories import UserFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db


def _overlaps() -> int:
    with connection.cursor() as cursor:
        cursor.execute(database.OVERLAP_SQL)
        return cursor.fetchone()[0]


def _reservation_indexes() -> set[str]:
    """Names of the table's indexes and constraints."""
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, "reservations_reservation"))


def test_the_overlap_check_finds_a_spot_booked_twice(lot, driver):
    start = timezone.now() + timedelta(days=1)
    first = book(driver, lot, start=start)
    assert _overlaps() == 0
    if connection.vendor == "postgresql":
        # The exclusion constraint would refuse the double booking the check must see
        # (dropped inside the test's transaction, so rolled back with it).
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the booking's pending FK checks
            cursor.execute(
                "ALTER TABLE reservations_reservation DROP CONSTRAINT reservation_no_overlap"
            )
    twin = Reservation.objects.get(pk=first.pk)
    twin.pk, twin.code = None, "ZZZZ-ZZZZ"
    twin.start = start + timedelta(hours=1)  # overlaps the second hour
    twin.status = Status.CANCELLED
    twin.save()
    assert _overlaps() == 0  # a cancelled booking blocks nothing
    Reservation.objects.filter(pk=twin.pk).update(status=Status.CONFIRMED)
    assert _overlaps() == 1


def test_long_history_is_one_settled_booking_per_spot_per_past_day(lot):
    users = [UserFactory().pk for _ in range(3)]
    now = timezone.now()
    before = _reservation_indexes()
    rows = database._long_history([lot.pk], 4, users, now=now, rng=random.Random(3))
    assert rows == 3 * 4  # the lot's 3 spots, 4 days
    history = list(Reservation.objects.filter(lot=lot))
    assert len(history) == 12
    assert {r.status for r in history} <= {"completed", "no_show", "cancelled", "expired"}
    assert all(r.end < now - timedelta(days=2) for r in history)  # before the short history
    assert all(r.code.startswith("0") and len(r.code) == 9 for r in history)  # never a live code
    for r in history:
        assert r.user_id in users
        assert r.price_amount == min(250 * int((r.end - r.start).total_seconds() // 3600), 2000)
    per_spot_day = {(r.spot_id, r.start.date()) for r in history}
    assert len(per_spot_day) == 12
    assert _overlaps() == 0
    assert _reservation_indexes() == before  # the bulk load's indexes are back
    blocking = [r for r in history if r.status in BLOCKING_STATUSES]
    assert all(r.arrived_at == r.start for r in blocking if r.status == "completed")


def test_seeded_history_never_repeats_a_reservation_code():
    from bench.database import _unique_codes
    from reservations.models import Reservation

    history = [Reservation(code="AAAA-BBBB"), Reservation(code="AAAA-BBBB"), Reservation()]
    _unique_codes(history)
    assert len({r.code for r in history}) == 3
    assert history[0].code == "AAAA-BBBB"


def test_the_short_history_holds_a_live_share_of_unpaid_holds(lot):
    # A live database always has bookings waiting for payment; the planner's
    # statistics taken after seeding must know them, or it plans the drivers'
    # unpaid-holds check as if there were none (reservations 0015).
    spots = [(spot.pk, lot.pk, spot.vehicle_type) for spot in lot.spots.all()] * 60
    now = timezone.now()
    rows = database._history(
        spots,
        {lot.pk: lot.currency},
        {(lot.pk, "car"): (250, 2000)},
        [UserFactory().pk],
        3,
        now=now,
        rng=random.Random(5),
    )
    pending = [r for r in rows if r.status == Status.PENDING_PAYMENT]
    assert 0 < len(pending) < len(rows) * 0.1
    assert all(now < r.hold_expires_at <= now + timedelta(minutes=15) for r in pending)
    assert all(r.start > now and r.arrived_at is None for r in pending)


def test_seeded_holds_are_still_open_when_a_slow_long_history_is_done(monkeypatch):
    # A year of history takes minutes to seed; holds seeded before it had lapsed
    # by the time the phases began, and bookings meeting them went the slow way.
    long_history = database._long_history
    with time_machine.travel(timezone.now(), tick=False) as traveller:

        def twenty_minutes_of_history(*args, **kwargs) -> int:
            rows = long_history(*args, **kwargs)
            traveller.shift(timedelta(minutes=20))
            return rows

        monkeypatch.setattr(database, "_long_history", twenty_minutes_of_history)
        seeded = database.seed(
            lots=1,
            spots_per_lot=40,
            event_spots=2,
            reservations_per_spot=3,
            users=2,
            rng=random.Random(7),
            history_days=2,
        )
        holds = Reservation.objects.filter(status=Status.PENDING_PAYMENT)
        assert seeded.history_rows == 40 * 2
        assert holds.exists()
        assert not holds.filter(hold_expires_at__lte=timezone.now()).exists()


@pytest.mark.postgres
def test_reservations_are_analyzed_after_every_ten_thousand_changed_rows():
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'reservations_reservation'")
        (options,) = cursor.fetchone()
    assert "autovacuum_analyze_scale_factor=0" in options
    assert "autovacuum_analyze_threshold=10000" in options
