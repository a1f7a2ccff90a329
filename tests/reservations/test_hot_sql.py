"""The hand-written SQL (availability, best-fit spot) says what the ORM version
says, on a lot full of bookings in every state (cars parked past their end
among them), for many windows."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.db.models import Min, Q
from django.utils import timezone

from lots.features import SpotFeature, SpotNeeds, spot_features, spot_needs
from lots.models import Spot
from reservations import hot_sql
from reservations.allocation import (
    best_fit_spots,
    closures_over,
    free_spots,
    neighbour_spot_ids,
    overlapping_q,
)
from reservations.models import Actor, Closure, Reservation, ReservationEvent, Status
from tests.conftest import NOW
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
        hourly, daily_max, _, free, first_change = hot_sql.availability(
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


def _random_history(rng: random.Random, lot, spots, user, now) -> None:
    """Bookings in every state on every spot, back to back or with gaps, some
    holds lapsed, some cars parked past their end; released ones anywhere."""
    for spot in spots:
        cursor = now - timedelta(hours=rng.randrange(0, 12))
        for _ in range(rng.randrange(0, 12)):
            start = cursor + timedelta(minutes=30 * rng.randrange(0, 10))
            end = start + timedelta(minutes=30 * rng.randrange(1, 10))
            status = rng.choice(list(Status))
            Reservation.objects.create(
                user=user,
                lot=lot,
                spot=spot,
                vehicle_type=spot.vehicle_type,
                start=start,
                end=end,
                occupied_until=end,
                status=status,
                price_amount=100,
                currency="usd",
                hold_expires_at=now + timedelta(minutes=rng.choice([-5, 10]))
                if status == Status.PENDING_PAYMENT
                else None,
            )
            if status not in (Status.CANCELLED, Status.EXPIRED):
                cursor = end


def test_best_fit_among_the_neighbours_matches_the_orm_on_random_lots():
    """More spots than neighbours looked at, spots to leave out, inactive spots
    and spots of another type: the SQL picks the spot the ORM version ranks
    first, from the neighbours when one is free and else the first free one."""
    rng = random.Random(20261203)
    user = UserFactory()
    now = timezone.now()
    from_neighbours = fallbacks = nothing = 0
    for _ in range(3):
        lot = LotFactory()
        RateFactory(lot=lot)
        spots = SpotFactory.create_batch(3 * hot_sql.NEIGHBOURS, lot=lot, vehicle_type="car")
        spots += [
            SpotFactory(lot=lot, vehicle_type="car", is_active=False),
            SpotFactory(lot=lot, vehicle_type="van"),
        ]
        _random_history(rng, lot, spots, user, now)
        for _ in range(60):
            start = now + timedelta(minutes=15 * rng.randrange(-8, 200))
            end = start + timedelta(minutes=15 * rng.randrange(2, 40))
            # Leaving every spot out but a few: the lot is often full.
            exclude = rng.sample([s.pk for s in spots], rng.choice([0, 0, 1, 3, len(spots) - 2]))
            window = {"lot_id": lot.pk, "vehicle_type": "car", "start": start, "end": end}
            expected = best_fit_spots(**window, now=now, exclude=exclude).first()
            picked = hot_sql.pick_spot(
                lot_pk=lot.pk,
                vehicle_type="car",
                start=start,
                end=end,
                now=now,
                exclude=exclude,
                wait=False,
            )
            assert (picked[0] if picked else None) == (expected.pk if expected else None)
            if expected is None:
                nothing += 1
            elif expected.pk in neighbour_spot_ids(**window, now=now):
                from_neighbours += 1
            else:
                fallbacks += 1
    # Every branch was compared, many times.
    assert min(from_neighbours, fallbacks, nothing) >= 5, (from_neighbours, fallbacks, nothing)


@pytest.mark.postgres
def test_the_one_statement_booking_takes_the_spot_the_orm_ranks_first():
    rng = random.Random(99)
    user = UserFactory()
    now = timezone.now()
    lot = LotFactory()
    RateFactory(lot=lot)
    spots = SpotFactory.create_batch(3 * hot_sql.NEIGHBOURS, lot=lot, vehicle_type="car")
    _random_history(rng, lot, spots, user, now)
    compared = 0
    for _ in range(40):
        start = now + timedelta(minutes=15 * rng.randrange(0, 200))
        end = start + timedelta(minutes=15 * rng.randrange(2, 40))
        window = {"lot_id": lot.pk, "vehicle_type": "car", "start": start, "end": end}
        expected = best_fit_spots(**window, now=now).first()
        reservation = Reservation(
            user=user,
            lot=lot,
            vehicle_type="car",
            start=start,
            end=end,
            occupied_until=end,
            status=Status.PENDING_PAYMENT,
            price_amount=100,
            currency="usd",
            hold_expires_at=now + timedelta(minutes=15),
        )
        event = ReservationEvent(to_status=Status.PENDING_PAYMENT, actor=Actor.DRIVER, at=now)
        with transaction.atomic():
            booked = hot_sql.book(
                reservation=reservation,
                event=event,
                max_unpaid=1_000_000,
                plate_horizon=now,
                key=None,
                fingerprint="",
                now=now,
            )
            if booked.reservation_pk is not None:  # not a lapsed hold in the way
                compared += 1
                assert booked.spot[0] == expected.pk
                row = Reservation.objects.get(pk=booked.reservation_pk)
                assert (row.spot_id, row.start, row.end) == (expected.pk, start, end)
            else:
                assert (booked.spot[0] if booked.spot else None) == (
                    expected.pk if expected else None
                )
            transaction.set_rollback(True)
    assert compared >= 20


@pytest.mark.postgres
def test_the_booking_statement_sends_each_value_as_the_orm_would(driver, lot):
    with time_machine.travel(timezone.now(), tick=False):
        now = timezone.now()
        reservation = Reservation(
            user=driver,
            lot=lot,
            vehicle_type="car",
            vehicle_plate="AB123CD",
            start=now + timedelta(hours=1),
            end=now + timedelta(hours=3),
            occupied_until=now + timedelta(hours=3),
            status=Status.PENDING_PAYMENT,
            price_amount=600,
            currency="usd",
            hold_expires_at=now + timedelta(minutes=15),
        )
        event = ReservationEvent(
            to_status=Status.PENDING_PAYMENT, actor=Actor.DRIVER, actor_user=driver, at=now
        )
        for instance, prefix, skip in ((reservation, "r_", "spot_id"), (event, "e_", "")):
            sent = hot_sql._insert_params(instance, prefix=prefix, skip=skip or "reservation_id")
            for field in instance._meta.concrete_fields:
                name = f"{prefix}{field.attname}"
                if name not in sent:
                    continue
                orm = field.get_db_prep_save(field.pre_save(instance, add=True), connection)
                assert type(sent[name]) is type(orm), name
                assert getattr(sent[name], "obj", sent[name]) == getattr(orm, "obj", orm), name


def _featured_spots(rng: random.Random, lot, count: int) -> list:
    """Spots with every mix of features and height limits, on a lot with a limit of its own."""
    return [
        SpotFactory(
            lot=lot,
            vehicle_type="car",
            has_ev_charging=rng.random() < 0.3,
            is_accessible=rng.random() < 0.2,
            is_covered=rng.random() < 0.5,
            max_height_cm=rng.choice([None, None, 190, 210, 260]),
        )
        for _ in range(count)
    ]


def _random_needs(rng: random.Random) -> SpotNeeds:
    features = rng.sample(list(SpotFeature.values), rng.choice([0, 0, 1, 1, 2, 3]))
    height = rng.choice([None, None, 180, 200, 230, 245])
    return spot_needs(features, height)


def test_spots_with_features_are_picked_and_counted_as_the_orm_does():
    """With features asked for and heights given (the lot's own limit among
    them), the SQL picks the spot the ORM ranks first and counts the spots the
    ORM finds free; a spot it picks always has what was asked."""
    rng = random.Random(151215)
    user = UserFactory()
    now = timezone.now()
    picked_some = nothing = 0
    for height_limit in (None, 240):
        lot = LotFactory(height_limit_cm=height_limit)
        RateFactory(lot=lot)
        spots = _featured_spots(rng, lot, 3 * hot_sql.NEIGHBOURS)
        _random_history(rng, lot, spots, user, now)
        for _ in range(80):
            start = now + timedelta(minutes=15 * rng.randrange(-8, 200))
            end = start + timedelta(minutes=15 * rng.randrange(2, 40))
            needs = _random_needs(rng)
            exclude = rng.sample([s.pk for s in spots], rng.choice([0, 0, 1, 3]))
            window = {"lot_id": lot.pk, "vehicle_type": "car", "start": start, "end": end}
            expected = best_fit_spots(**window, now=now, exclude=exclude, needs=needs).first()
            picked = hot_sql.pick_spot(
                lot_pk=lot.pk,
                vehicle_type="car",
                start=start,
                end=end,
                now=now,
                exclude=exclude,
                wait=False,
                needs=needs,
            )
            assert (picked[0] if picked else None) == (expected.pk if expected else None)
            free = hot_sql.availability(
                lot_pk=lot.pk, vehicle_type="car", start=start, end=end, now=now, needs=needs
            )[3]
            assert free == free_spots(**window, now=now, needs=needs).count()
            if expected is None:
                nothing += 1
                continue
            picked_some += 1
            spot = Spot.objects.select_related("lot").get(pk=expected.pk)
            assert set(needs.features) <= set(spot_features(spot))
            if needs.height_cm is not None:
                assert (spot.max_height_cm or 1000) >= needs.height_cm
                assert (spot.lot.height_limit_cm or 1000) >= needs.height_cm
    assert min(picked_some, nothing) >= 10, (picked_some, nothing)


def test_without_features_asked_a_spot_without_scarce_ones_is_picked_first(lot):
    """A1 (EV) and A2 (accessible) come first by label; a driver who asked for
    neither gets C-001, and one who asked for EV charging gets A1."""
    now = timezone.now()
    SpotFactory(lot=lot, label="A1", has_ev_charging=True)
    SpotFactory(lot=lot, label="A2", is_accessible=True)
    window = {"lot_pk": lot.pk, "vehicle_type": "car", "now": now, "exclude": [], "wait": False}
    start = now + timedelta(days=3)
    window.update(start=start, end=start + timedelta(hours=2))

    plain = hot_sql.pick_spot(**window)
    ev = hot_sql.pick_spot(**window, needs=spot_needs(["ev_charging"]))

    assert (plain[3], ev[3]) == ("C-001", "A1")
    orm = {"lot_id": lot.pk, "vehicle_type": "car", "start": start, "end": window["end"]}
    assert best_fit_spots(**orm, now=now).first().label == "C-001"


@pytest.mark.postgres
def test_the_one_statement_booking_with_features_takes_the_spot_the_orm_ranks_first():
    rng = random.Random(4242)
    user = UserFactory()
    now = timezone.now()
    lot = LotFactory(height_limit_cm=240)
    RateFactory(lot=lot)
    spots = _featured_spots(rng, lot, 3 * hot_sql.NEIGHBOURS)
    _random_history(rng, lot, spots, user, now)
    compared = 0
    for _ in range(60):
        start = now + timedelta(minutes=15 * rng.randrange(0, 200))
        end = start + timedelta(minutes=15 * rng.randrange(2, 40))
        needs = _random_needs(rng)
        window = {"lot_id": lot.pk, "vehicle_type": "car", "start": start, "end": end}
        expected = best_fit_spots(**window, now=now, needs=needs).first()
        reservation = Reservation(
            user=user,
            lot=lot,
            vehicle_type="car",
            start=start,
            end=end,
            occupied_until=end,
            status=Status.PENDING_PAYMENT,
            price_amount=100,
            currency="usd",
            hold_expires_at=now + timedelta(minutes=15),
            requested_features=needs.stored,
            vehicle_height_cm=needs.height_cm,
        )
        event = ReservationEvent(to_status=Status.PENDING_PAYMENT, actor=Actor.DRIVER, at=now)
        with transaction.atomic():
            booked = hot_sql.book(
                reservation=reservation,
                event=event,
                max_unpaid=1_000_000,
                plate_horizon=now,
                key=None,
                fingerprint="",
                now=now,
                needs=needs,
            )
            assert (booked.spot[0] if booked.spot else None) == (expected.pk if expected else None)
            if booked.reservation_pk is not None:
                compared += 1
                row = Reservation.objects.get(pk=booked.reservation_pk)
                assert (row.spot_id, row.needs) == (expected.pk, needs)
            transaction.set_rollback(True)
    assert compared >= 20


def test_closed_spots_are_left_out_by_the_sql_as_by_the_orm_on_random_lots():
    """Closures of some spots, of the whole lot, lifted ones, over random
    windows: availability's count and the best-fit pick agree with the ORM,
    and no closed spot is ever picked."""
    rng = random.Random(1512)
    user = UserFactory()
    # A fixed clock and fixed labels: best fit's ties fall the same way every run.
    now = NOW
    lot = LotFactory()
    RateFactory(lot=lot, vehicle_type="car", hourly_amount=300, daily_max_amount=2000)
    spots = [
        SpotFactory(lot=lot, vehicle_type="car", label=f"C-{n:03}")
        for n in range(2 * hot_sql.NEIGHBOURS)
    ]
    SpotFactory(lot=lot, vehicle_type="van")
    _random_history(rng, lot, spots, user, now)
    other = LotFactory()  # another lot's closure closes nothing here
    Closure.objects.create(
        lot=other, starts_at=now, ends_at=now + timedelta(days=9), reason="x", created_at=now
    )
    for n in range(12):
        starts_at = now + timedelta(minutes=15 * rng.randrange(-10, 200))
        closure = Closure.objects.create(
            lot=lot,
            whole_lot=n in (0, 1, 2),
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=15 * rng.randrange(1, 30)),
            reason="works",
            created_at=now,
            lifted_at=now if n in (2, 5) else None,
        )
        if not closure.whole_lot:
            closure.spots.set(rng.sample(spots, rng.randrange(1, len(spots))))
    compared = {"none free": 0, "some closed": 0, "lot closed": 0}
    for _ in range(120):
        start = now + timedelta(minutes=15 * rng.randrange(0, 220))
        end = start + timedelta(minutes=15 * rng.randrange(2, 24))
        window = {"start": start, "end": end, "now": now}
        free = hot_sql.availability(lot_pk=lot.pk, vehicle_type="car", **window)[3]
        expected = free_spots(lot_id=lot.pk, vehicle_type="car", **window)
        assert free == expected.count()
        best = best_fit_spots(lot_id=lot.pk, vehicle_type="car", **window).first()
        picked = hot_sql.pick_spot(
            lot_pk=lot.pk, vehicle_type="car", **window, exclude=[], wait=False
        )
        assert (picked[0] if picked else None) == (best.pk if best else None)
        closures = closures_over(lot_id=lot.pk, start=start, end=end)
        if picked is not None:
            assert not closures.filter(Q(whole_lot=True) | Q(spots=picked[0])).exists()
        if closures.filter(whole_lot=True).exists():
            compared["lot closed"] += 1
            assert free == 0
        elif closures.exists():
            compared["some closed"] += 1
        if free == 0:
            compared["none free"] += 1
    assert min(compared.values()) >= 5, compared
