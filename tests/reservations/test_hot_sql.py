"""The hand-written SQL (availability, best-fit spot) says what the ORM version
says, on a lot full of bookings in every state (cars parked past their end
among them), for many windows."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db.models import Min
from django.utils import timezone

from reservations import hot_sql
from reservations.allocation import best_fit_spots, free_spots, overlapping_q
from reservations.models import Reservation, Status
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_hand_written_availability_matches_the_orm():
    rng = random.Random(7)
    lot = LotFactory()
    RateFactory(lot=lot, vehicle_type="car", hourly_amount=300, daily_max_amount=2000)
    spots = SpotFactory.create_batch(8, lot=lot, vehicle_type="car")
    SpotFactory(lot=lot, vehicle_type="car", is_active=False)
    SpotFactory(lot=lot, vehicle_type="van")
    user = UserFactory()
    now = timezone.now()
    for spot in spots:
        # Blocking bookings of one spot never overlap (PostgreSQL would refuse);
        # released ones may lie anywhere.
        cursor = now - timedelta(hours=6)  # some stays are over: parked ones overstay
        for _ in range(10):
            start = cursor + timedelta(minutes=30 * rng.randrange(0, 8))
            end = start + timedelta(minutes=30 * rng.randrange(1, 10))
            status = rng.choice(list(Status))
            Reservation.objects.create(
                user=user,
                lot=lot,
                spot=spot,
                vehicle_type="car",
                start=start,
                end=end,
                occupied_until=end,
                status=status,
                price_amount=100,
                currency="usd",
                # Some holds have lapsed, some have not.
                hold_expires_at=now + timedelta(minutes=rng.choice([-5, 10]))
                if status == Status.PENDING_PAYMENT
                else None,
            )
            if status not in (Status.CANCELLED, Status.EXPIRED):
                cursor = end

    for _ in range(100):
        start = now + timedelta(minutes=15 * rng.randrange(0, 200))
        end = start + timedelta(minutes=15 * rng.randrange(2, 40))
        hourly, daily_max, free, first_change = hot_sql.availability(
            lot_pk=lot.pk, vehicle_type="car", start=start, end=end, now=now
        )
        assert (hourly, daily_max) == (300, 2000)
        best = best_fit_spots(lot_id=lot.pk, vehicle_type="car", start=start, end=end, now=now)
        picked = hot_sql.pick_spot(
            lot_pk=lot.pk,
            vehicle_type="car",
            start=start,
            end=end,
            now=now,
            exclude=[],
            wait=False,
        )
        assert (picked[0] if picked else None) == (best[0].pk if best else None)
        assert (
            free
            == free_spots(lot_id=lot.pk, vehicle_type="car", start=start, end=end, now=now).count()
        )
        first_lapse = (
            Reservation.objects.filter(
                lot=lot, vehicle_type="car", status=Status.PENDING_PAYMENT, hold_expires_at__gt=now
            )
            .filter(overlapping_q(start, end, now))
            .aggregate(at=Min("hold_expires_at"))["at"]
        )
        first_overstay = Reservation.objects.filter(
            lot=lot, vehicle_type="car", status=Status.PARKED, end__gt=now
        ).aggregate(at=Min("end"))["at"]
        changes = [t for t in (first_lapse, first_overstay) if t is not None]
        assert first_change == min(changes, default=None)

    assert (
        hot_sql.availability(
            lot_pk=lot.pk,
            vehicle_type="motorcycle",
            start=now,
            end=now + timedelta(hours=1),
            now=now,
        )
        is None
    )
    assert hot_sql.lot_version(lot.slug)[0] == lot.pk
    assert hot_sql.lot_version("no-such-lot") is None
