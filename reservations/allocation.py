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
    BooleanField,
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

from lots.features import FEATURE_FIELDS, NO_NEEDS, SCARCE_FEATURES, SpotNeeds
from lots.models import Lot, Spot
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


def spots_with_q(needs: SpotNeeds) -> Q:
    """Spots that have what a booking needs: every feature named, and room for
    the vehicle's height under the spot's own limit and its lot's."""
    q = Q(**{FEATURE_FIELDS[name]: True for name in needs.features})
    if needs.height_cm is not None:
        too_low = Lot.objects.filter(pk=OuterRef("lot_id"), height_limit_cm__lt=needs.height_cm)
        q &= Q(max_height_cm__isnull=True) | Q(max_height_cm__gte=needs.height_cm)
        q &= ~Exists(too_low)
    return q


def spare_first(needs: SpotNeeds) -> list:
    """Order-by terms putting first the spots without the scarce features the
    booking did not ask for (hot_sql._spare_sql)."""
    spare = [name for name in SCARCE_FEATURES if name not in needs.features]
    if not spare:
        return []
    q = Q()
    for name in spare:
        q |= Q(**{FEATURE_FIELDS[name]: True})
    return [ExpressionWrapper(q, output_field=BooleanField()).asc()]


def closures_over(*, lot_id: int, start: datetime, end: datetime) -> QuerySet[Closure]:
    """The lot's closures in force over part of [start, end)."""
    return Closure.objects.filter(
        lot_id=lot_id, lifted_at__isnull=True, ends_at__gt=start, starts_at__lt=end
    )


def free_spots(
    *,
    lot_id: int,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    now: datetime,
    needs: SpotNeeds = NO_NEEDS,
) -> QuerySet[Spot]:
    taken = Reservation.objects.filter(spot=OuterRef("pk")).filter(
        live_blocking_q(now), overlapping_q(start, end, now)
    )
    closures = closures_over(lot_id=lot_id, start=start, end=end)
    closed_spots = Closure.spots.through.objects.filter(closure__in=closures).values("spot_id")
    return (
        Spot.objects.filter(lot_id=lot_id, vehicle_type=vehicle_type, is_active=True)
        .filter(~Exists(taken), spots_with_q(needs))
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
    needs: SpotNeeds = NO_NEEDS,
) -> QuerySet[Spot]:
    """The free spots that have what the booking `needs` next to the
    neighbouring bookings, best fit first; when none of them is free, every
    such free spot, by label. Ties go to spots without scarce features the
    booking did not ask for."""
    free = free_spots(
        lot_id=lot_id, vehicle_type=vehicle_type, start=start, end=end, now=now, needs=needs
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
    spare = spare_first(needs)
    if candidates.exists():
        return candidates.annotate(free_span=span).order_by(F("free_span").asc(), *spare, "label")
    return free.order_by(*spare, "label")
