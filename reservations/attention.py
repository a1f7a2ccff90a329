"""What needs a lot's staff: reads only.

- settlements that failed for good (Settlement.ATTENTION): retry once the cause is fixed;
- cars still parked after their end (overstayers): the gate may have missed the exit;
- bookings we cancelled because their spot was not there for them (displaced by a
  car that stayed on, or by a closure): for a week after their time, so staff can
  contact the driver;
- cars parked in a spot that a closure in force closed (a closure never cancels a
  parked car): while the car is there.

Four queries, each on an index (the open settlements, the parked cars by end,
the lot's reservations by start, the parked cars by lot), whatever the size of
the lot's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from lots.models import Lot
from reservations.models import (
    ClosureImpact,
    Reservation,
    ReservationEvent,
    Settlement,
    Status,
)

# Reasons recorded on the event of a booking we cancelled for want of its spot
# (status.DISPLACED is "displaced_by_overstay"; a closure records its own
# "displaced_by_…" reason): any reason starting with this counts.
DISPLACED_PREFIX = "displaced"
# How long after its time a displaced booking stays listed.
DISPLACED_LISTED_FOR = timedelta(days=7)


@dataclass(frozen=True)
class Attention:
    lot: Lot
    now: datetime
    settlements: list[Reservation]
    overstayers: list[Reservation]
    displaced: list[Reservation]
    closed_parked: list[Reservation]

    @property
    def count(self) -> int:
        return (
            len(self.settlements)
            + len(self.overstayers)
            + len(self.displaced)
            + len(self.closed_parked)
        )


def displaced_q(now: datetime) -> Q:
    displaced = Exists(
        ReservationEvent.objects.filter(
            reservation=OuterRef("pk"),
            to_status=Status.CANCELLED,
            data__reason__startswith=DISPLACED_PREFIX,
        )
    )
    return Q(displaced, status=Status.CANCELLED, end__gte=now - DISPLACED_LISTED_FOR)


def _displaced_window(now: datetime) -> Q:
    # Bound `start` so that the lot's (lot, start) index finds them: a listed
    # booking ended in the last week, so it started at most its longest length before.
    earliest = now - DISPLACED_LISTED_FOR - timedelta(days=settings.BOOKING_MAX_DAYS)
    return Q(start__gte=earliest)


def closed_parked_q(now: datetime) -> Q:
    """A car still parked in a spot a closure in force (not over) closed."""
    in_closed_spot = Exists(
        ClosureImpact.objects.filter(
            reservation=OuterRef("pk"),
            outcome=ClosureImpact.Outcome.PARKED,
            closure__lifted_at__isnull=True,
            closure__ends_at__gt=now,
        )
    )
    return Q(in_closed_spot, status=Status.PARKED)


def lot_attention(*, lot: Lot, now: datetime | None = None) -> Attention:
    """The lot's open items, oldest first. Four queries."""
    now = now or timezone.now()
    base = Reservation.objects.filter(lot_id=lot.pk).select_related("spot", "user")
    return Attention(
        lot=lot,
        now=now,
        settlements=list(base.filter(settlement=Settlement.ATTENTION).order_by("end", "pk")),
        overstayers=list(base.filter(status=Status.PARKED, end__lte=now).order_by("end", "pk")),
        displaced=list(
            base.filter(_displaced_window(now)).filter(displaced_q(now)).order_by("start", "pk")
        ),
        closed_parked=list(base.filter(closed_parked_q(now)).order_by("start", "pk")),
    )


def lots_attention_counts(*, lot_ids: list[int], now: datetime | None = None) -> dict[int, int]:
    """How many items each lot has open (for a badge). Four queries."""
    now = now or timezone.now()
    counts = dict.fromkeys(lot_ids, 0)
    base = Reservation.objects.filter(lot_id__in=lot_ids).order_by()
    for queryset in (
        base.filter(settlement=Settlement.ATTENTION),
        base.filter(status=Status.PARKED, end__lte=now),
        base.filter(_displaced_window(now)).filter(displaced_q(now)),
        base.filter(closed_parked_q(now)),
    ):
        for lot_id, n in (
            queryset.values("lot_id").annotate(n=Count("pk")).values_list("lot_id", "n")
        ):
            counts[lot_id] += n
    return counts
