"""Which spot a new reservation gets: one query, no loop over spots.

The policy is best fit: among the spots free for the whole window, take the one
whose neighbouring bookings leave the smallest gaps around it, so that long
free stretches stay whole for future bookings.
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
from reservations.models import BLOCKING_Q, Reservation, Status

# Stand-in for "no booking on that side": far enough that any real gap is smaller.
_HORIZON = timedelta(days=400)


def live_blocking_q(now: datetime) -> Q:
    """Reservations that take their spot now: blocking states, minus lapsed holds."""
    return BLOCKING_Q & ~Q(status=Status.PENDING_PAYMENT, hold_expires_at__lte=now)


def overlapping_q(start: datetime, end: datetime, now: datetime) -> Q:
    """Reservations holding their spot over part of [start, end): half-open
    [start, occupied_until), so back-to-back bookings do not overlap; and a car
    still parked after its end holds the spot until it leaves."""
    overstaying = Q(status=Status.PARKED, end__lte=now)
    return Q(start__lt=end) & (Q(occupied_until__gt=start) | overstaying)


def free_spots(
    *, lot_id: int, vehicle_type: str, start: datetime, end: datetime, now: datetime
) -> QuerySet[Spot]:
    taken = Reservation.objects.filter(spot=OuterRef("pk")).filter(
        live_blocking_q(now), overlapping_q(start, end, now)
    )
    return Spot.objects.filter(lot_id=lot_id, vehicle_type=vehicle_type, is_active=True).filter(
        ~Exists(taken)
    )


def best_fit_spots(
    *,
    lot_id: int,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    now: datetime,
    exclude: Iterable[int] = (),
) -> QuerySet[Spot]:
    """Free spots, best fit first."""
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
    return (
        free_spots(lot_id=lot_id, vehicle_type=vehicle_type, start=start, end=end, now=now)
        .exclude(pk__in=list(exclude))
        .annotate(free_span=span)
        .order_by(F("free_span").asc(), "label")
    )
