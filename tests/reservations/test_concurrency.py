"""Double booking under real concurrency: threads, each with its own database
connection, race for spots; afterwards plain SQL finds no overlapping pair."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from config.errors import ApplicationError
from lots.models import Spot
from reservations import hot_sql
from reservations.models import Reservation, Status
from reservations.services import reservation_cancel, reservation_create
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.reservations.helpers import overlapping_pairs

pytestmark = pytest.mark.django_db(transaction=True)


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


def _attempt(user, lot, start, end):
    def job():
        try:
            return reservation_create(
                user=user, lot_id=lot.slug, vehicle_type="car", start=start, end=end
            ).reservation.code
        except ApplicationError as exc:
            return exc.code

    return job


def test_fifty_drivers_racing_for_the_last_spot_exactly_one_wins():
    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory(lot=lot)
    users = UserFactory.create_batch(50)
    start = timezone.now() + timedelta(hours=2)
    # Every window overlaps every other one by at least 30 minutes.
    jobs = [
        _attempt(user, lot, start + timedelta(minutes=i), start + timedelta(hours=1, minutes=i))
        for i, user in enumerate(users)
    ]

    outcomes = Counter(
        "won" if "-" in result else result for result in _run_in_threads(jobs, workers=50)
    )

    assert outcomes == {"won": 1, "no_spot_available": 49}
    assert Reservation.objects.count() == 1
    assert overlapping_pairs() == 0


def test_random_hammering_never_double_books_and_every_success_is_a_row():
    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory.create_batch(3, lot=lot)
    users = UserFactory.create_batch(8)
    base = timezone.now() + timedelta(hours=1)
    rng = random.Random(20260304)

    def worker(user, seed):
        def job():
            local = random.Random(seed)
            won = []
            for _ in range(15):
                start = base + timedelta(minutes=15 * local.randrange(0, 4 * 24))
                end = start + timedelta(minutes=30 * local.randrange(1, 12))
                try:
                    result = reservation_create(
                        user=user, lot_id=lot.slug, vehicle_type="car", start=start, end=end
                    )
                    won.append(result.reservation.code)
                    if len(won) % 3 == 1:  # some drivers change their mind
                        reservation_cancel(reservation_id=result.reservation.pk, actor_user=user)
                except ApplicationError as exc:
                    won.append(exc.code)  # anything but no_spot_available fails below
            return won

        return job

    results = _run_in_threads([worker(user, rng.random()) for user in users], workers=len(users))
    outcomes = [outcome for won in results for outcome in won]
    codes = [code for code in outcomes if "-" in code]
    assert set(outcomes) - set(codes) <= {"no_spot_available"}

    assert len(codes) > 10  # the lot really was contended and really was booked
    assert set(Reservation.objects.values_list("code", flat=True)) == set(codes)
    assert overlapping_pairs() == 0
    assert Reservation.objects.filter(status=Status.CANCELLED).exists()


@pytest.mark.postgres
def test_the_database_refuses_an_overlapping_row_even_if_the_code_is_wrong():
    lot = LotFactory()
    RateFactory(lot=lot)
    spot = SpotFactory(lot=lot)
    user = UserFactory()
    start = timezone.now() + timedelta(hours=1)
    first = reservation_create(
        user=user, lot_id=lot.slug, vehicle_type="car", start=start, end=start + timedelta(hours=2)
    ).reservation

    def clone(**changes):
        fields = {
            "user": user,
            "lot": lot,
            "spot": spot,
            "vehicle_type": "car",
            "start": first.start,
            "end": first.end,
            "occupied_until": first.end,
            "status": Status.CONFIRMED,
            "price_amount": 100,
            "currency": "usd",
        }
        return Reservation(**{**fields, **changes})

    with pytest.raises(IntegrityError, match="reservation_no_overlap"), transaction.atomic():
        clone(
            start=start + timedelta(hours=1),
            end=start + timedelta(hours=3),
            occupied_until=start + timedelta(hours=3),
        ).save()

    # Back to back is fine, and so is anything that no longer blocks.
    clone(
        start=first.end,
        end=first.end + timedelta(hours=1),
        occupied_until=first.end + timedelta(hours=1),
    ).save()
    clone(status=Status.CANCELLED).save()
    clone(status=Status.EXPIRED).save()
    assert overlapping_pairs() == 0


@pytest.mark.postgres
def test_an_overlap_caught_only_by_the_constraint_is_a_409_not_a_500(monkeypatch):
    """If allocation's own checks were wrong, the exclusion constraint still
    refuses the row, and the service moves on and ends with no_spot_available."""
    from reservations.services import placement

    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory.create_batch(2, lot=lot)
    user = UserFactory()
    start = timezone.now() + timedelta(hours=1)
    end = start + timedelta(hours=2)
    for _ in range(2):
        reservation_create(user=user, lot_id=lot.slug, vehicle_type="car", start=start, end=end)

    # Break both checks: every spot looks free and the re-check sees nothing.
    def any_spot(*, lot_pk, vehicle_type, exclude, **_):
        spots = Spot.objects.filter(lot_id=lot_pk, vehicle_type=vehicle_type).exclude(
            pk__in=list(exclude)
        )
        return spots.order_by("label").values_list(*hot_sql.SPOT_COLUMNS).first()

    monkeypatch.setattr(placement.hot_sql, "pick_spot", any_spot)
    monkeypatch.setattr(placement, "claim_window", lambda **_: False)

    with pytest.raises(ApplicationError) as exc:
        reservation_create(user=user, lot_id=lot.slug, vehicle_type="car", start=start, end=end)
    assert (exc.value.status, exc.value.code) == (409, "no_spot_available")
    assert Reservation.objects.count() == 2
    assert connection.vendor == "postgresql"


def test_a_request_retried_at_once_with_its_idempotency_key_books_once():
    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory.create_batch(5, lot=lot)
    user = UserFactory()
    start = timezone.now() + timedelta(hours=2)

    def twin():
        return reservation_create(
            user=user,
            lot_id=lot.slug,
            vehicle_type="car",
            start=start,
            end=start + timedelta(hours=1),
            idempotency_key="retry-7f1c",
        )

    results = _run_in_threads([twin] * 6, workers=6)

    assert len({r.reservation.code for r in results}) == 1
    assert sorted(r.created for r in results) == [False] * 5 + [True]
    assert Reservation.objects.count() == 1


@pytest.mark.postgres
def test_two_gates_reporting_one_arrival_at_once_both_get_the_parked_car():
    """A gate retrying while its first call is still running: both answers say
    parked. (Locking the row while joining its lot used to find nothing once the
    other call had bumped the lot's availability version: a 404.)"""
    from reservations.services import reservation_arrive, reservation_confirm

    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory.create_batch(10, lot=lot)
    start = timezone.now() + timedelta(minutes=5)
    for n in range(8):  # the cars stay: each arrival is beside parked ones
        reservation = reservation_create(
            user=UserFactory(),
            lot_id=lot.slug,
            vehicle_type="car",
            start=start + timedelta(hours=3 * n),
            end=start + timedelta(hours=3 * n + 2),
        ).reservation
        reservation_confirm(reservation_id=reservation.pk)

        def arrive(reservation=reservation):
            try:
                return reservation_arrive(
                    reservation_id=reservation.pk, at=reservation.start
                ).reservation.status
            except ApplicationError as exc:
                return exc.code

        assert _run_in_threads([arrive, arrive], workers=2) == [Status.PARKED, Status.PARKED]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


@pytest.mark.postgres
def test_a_hot_lot_sells_its_last_spots_once_and_refuses_the_rest_without_queueing(capsys):
    """Far more drivers than spots, all for the same evening: as many win as there
    are spots, the others get no_spot_available, no spot is booked twice, every
    win is a row. How long refusals took is printed (run with -s), not asserted."""
    import time

    spots = 6
    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory.create_batch(spots, lot=lot)
    # Four times as many as there are spots; a connection each, few enough for
    # a PostgreSQL server that others share (max_connections).
    users = UserFactory.create_batch(24)
    start = timezone.now() + timedelta(hours=3)

    connected = threading.Barrier(len(users))

    def attempt(user, i):
        def job():
            # Time the booking, not the opening of the thread's connection.
            connection.ensure_connection()
            connected.wait(timeout=30)
            began = time.perf_counter()
            outcome = _attempt(
                user, lot, start + timedelta(minutes=i % 5), start + timedelta(hours=4)
            )()
            return outcome, time.perf_counter() - began

        return job

    results = _run_in_threads(
        [attempt(user, i) for i, user in enumerate(users)], workers=len(users)
    )

    won = [code for code, _ in results if "-" in code]
    refused = [seconds for code, seconds in results if code == "no_spot_available"]
    assert len(won) == spots
    assert len(refused) == len(users) - spots
    assert sorted(Reservation.objects.values_list("code", flat=True)) == sorted(won)
    assert overlapping_pairs() == 0
    with capsys.disabled():
        print(
            f"\nhot lot: {len(won)} booked, {len(refused)} refused; refusals took "
            f"p50 {1000 * _percentile(refused, 0.5):.1f} ms, "
            f"p99 {1000 * _percentile(refused, 0.99):.1f} ms, "
            f"max {1000 * max(refused):.1f} ms; bookings took max "
            f"{1000 * max(s for c, s in results if '-' in c):.1f} ms"
        )


@pytest.mark.postgres
def test_a_booking_is_refused_at_once_when_the_last_free_spot_is_being_taken():
    """Another booking holds the lot's only free spot (it is inserting there): a
    new request is told no_spot_available at once instead of queueing behind it.
    Were it to wait, it would get the spot once the holder gives up: a 201."""
    lot = LotFactory()
    RateFactory(lot=lot)
    spot = SpotFactory(lot=lot)
    locked, release = threading.Event(), threading.Event()

    def holder():
        try:
            with transaction.atomic():
                Spot.objects.select_for_update(of=("self",)).filter(pk=spot.pk).order_by().get()
                locked.set()
                release.wait(timeout=20)  # and gives up: rolls nothing back but its lock
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert locked.wait(timeout=20)
        start = timezone.now() + timedelta(hours=1)
        outcome = _attempt(UserFactory(), lot, start, start + timedelta(hours=1))()
    finally:
        release.set()
        thread.join()
    assert outcome == "no_spot_available"
    assert not Reservation.objects.exists()


def _inside_closures() -> int:
    """Live bookings (unpaid holds, paid, parked) inside a closure in force of
    their spot or lot: plain SQL, independent of the code under test."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT COUNT(*) FROM reservations_reservation x
            JOIN reservations_closure c ON c.lot_id = x.lot_id AND c.lifted_at IS NULL
            WHERE x.status IN ('pending_payment', 'confirmed', 'parked')
              AND x.start < c.ends_at AND x.occupied_until > c.starts_at
              AND (c.whole_lot OR EXISTS (
                SELECT 1 FROM reservations_closure_spots cs
                WHERE cs.closure_id = c.id AND cs.spot_id = x.spot_id))
            """
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_bookings_racing_closures_never_leave_a_booking_inside_one():
    """Drivers book a lot while its staff close some of its spots, then all of
    it, for a few hours: whatever the interleaving, every booking ends up
    outside every closure (moved or cancelled by the closure, or never made)."""
    from reservations.services.closures import closure_create

    lot = LotFactory()
    RateFactory(lot=lot)
    spots = SpotFactory.create_batch(4, lot=lot)
    users = UserFactory.create_batch(12)
    base = timezone.now() + timedelta(hours=1)
    outcomes: Counter = Counter()

    def driver(user, seed):
        def job():
            local = random.Random(seed)
            for _ in range(12):
                start = base + timedelta(minutes=30 * local.randrange(0, 16))
                end = start + timedelta(minutes=30 * local.randrange(1, 4))
                try:
                    reservation_create(
                        user=user, lot_id=lot.slug, vehicle_type="car", start=start, end=end
                    )
                    outcomes["booked"] += 1
                except ApplicationError as exc:
                    outcomes[exc.code] += 1

        return job

    def staff(delay_bookings: int, **closure):
        def job():
            # Let some bookings through first, so that the closure meets them.
            for _ in range(delay_bookings):
                connection.ensure_connection()
            closure_create(lot_id=lot.pk, reason="works", **closure)
            outcomes["closed"] += 1

        return job

    jobs = [driver(user, seed) for seed, user in enumerate(users)]
    jobs.insert(3, staff(0, spot_ids=[spots[0].pk, spots[1].pk], starts_at=base,
                         ends_at=base + timedelta(hours=3)))  # fmt: skip
    jobs.insert(9, staff(50, starts_at=base + timedelta(hours=5),
                         ends_at=base + timedelta(hours=7)))  # fmt: skip
    _run_in_threads(jobs, workers=len(jobs))

    assert outcomes["closed"] == 2
    assert outcomes["booked"] > 10, outcomes
    assert _inside_closures() == 0
    assert overlapping_pairs() == 0
