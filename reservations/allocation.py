"""Which spot a new reservation gets: one query, no loop over spots.

The policy is best fit: take the free spot whose neighbouring bookings leave
the smallest gaps around the window, so that long free stretches stay whole for
future bookings. The candidates are the spots of the NEIGHBOURS bookings of the
lot and type that end last before the window and of those that start first
after it: the spots whose gaps can be smallest, found in two short index ranges
instead of measuring every free spot. When none of them is free, the first free
spot by label. Closed spots (models.Closure) are never free.

reservations/hot_sql.py says the same in SQL; the tests compare the two.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import (
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce

from lots.models import Spot
from reservations.models import BLOCKING_Q, Closure, Reservation, Status

# Stand-in for "no booking on that side": far enough that any real gap is smaller.
_HORIZON = timedelta(days=400)

# Bookings looked at on each side of the window (hot_sql.NEIGHBOURS).
NEIGHBOURS = 8


def live_blocking_q(now: datetime) -> Q:
    """Reservations that take their spot now: blocking states, minus lapsed holds."""
    return BLOCKING_Q & ~Q(status=Status.PENDING_PAYMENT, hold_expires_at__lte=now)


def overlapping_q(start: datetime, end: datetime, now: datetime) -> Q:
    """Reservations holding their spot over part of [start, end): half-open
    [start, occupied_until), so back-to-back bookings do not overlap; and a car
    still parked after its end holds the spot until it leaves."""
    overstaying = Q(status=Status.PARKED, end__lte=now)
    return Q(start__lt=end) & (Q(occupied_until__gt=start) | overstaying)


def closures_over(*, lot_id: int, start: datetime, end: datetime) -> QuerySet[Closure]:
    """The lot's closures in force over part of [start, end)."""
    return Closure.objects.filter(
        lot_id=lot_id, lifted_at__isnull=True, ends_at__gt=start, starts_at__lt=end
    )


def free_spots(
    *, lot_id: int, vehicle_type: str, start: datetime, end: datetime, now: datetime
) -> QuerySet[Spot]:
    taken = Reservation.objects.filter(spot=OuterRef("pk")).filter(
        live_blocking_q(now), overlapping_q(start, end, now)
    )
    closures = closures_over(lot_id=lot_id, start=start, end=end)
    closed_spots = Closure.spots.through.objects.filter(closure__in=closures).values("spot_id")
    return (
        Spot.objects.filter(lot_id=lot_id, vehicle_type=vehicle_type, is_active=True)
        .filter(~Exists(taken))
        .filter(~Exists(closures.filter(whole_lot=True)))
        .exclude(pk__in=closed_spots)
    )


def neighbour_spot_ids(
    *, lot_id: int, vehicle_type: str, start: datetime, end: datetime, now: datetime
) -> set[int]:
    """Spots of the NEIGHBOURS bookings that end last before the window and of
    the NEIGHBOURS that start first after it (lapsed holds are no neighbours)."""
    live = Reservation.objects.filter(lot_id=lot_id, vehicle_type=vehicle_type).filter(
        live_blocking_q(now)
    )
    before = live.filter(occupied_until__lte=start).order_by("-occupied_until", "-pk")
    after = live.filter(start__gte=end).order_by("start", "pk")
    return {
        *before.values_list("spot_id", flat=True)[:NEIGHBOURS],
        *after.values_list("spot_id", flat=True)[:NEIGHBOURS],
    }


def best_fit_spots(
    *,
    lot_id: int,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    now: datetime,
    exclude: Iterable[int] = (),
) -> QuerySet[Spot]:
    """The free spots next to the neighbouring bookings, best fit first; when
    none of them is free, every free spot, by label."""
    free = free_spots(
        lot_id=lot_id, vehicle_type=vehicle_type, start=start, end=end, now=now
    ).exclude(pk__in=list(exclude))
    neighbours = Reservation.objects.filter(spot=OuterRef("pk")).filter(live_blocking_q(now))
    previous_end = (
        neighbours.filter(occupied_until__lte=start)
        .order_by("-occupied_until")
        .values("occupied_until")[:1]
    )
    next_start = neighbours.filter(start__gte=end).order_by("start").values("start")[:1]
    # next_start - previous_end = gap before + window + gap after; the window is
    # the same for every spot, so ordering by it orders by the total gap.
    span = ExpressionWrapper(
        Coalesce(Subquery(next_start), Value(end + _HORIZON), output_field=DateTimeField())
        - Coalesce(Subquery(previous_end), Value(start - _HORIZON), output_field=DateTimeField()),
        output_field=DurationField(),
    )
    candidates = free.filter(
        pk__in=neighbour_spot_ids(
            lot_id=lot_id, vehicle_type=vehicle_type, start=start, end=end, now=now
        )
    )
    if candidates.exists():
        return candidates.annotate(free_span=span).order_by(F("free_span").asc(), "label")
    return free.order_by("label")
