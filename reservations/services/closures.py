"""Lot staff close a whole lot, or some of its spots, for a while (maintenance,
an event).

While a closure is in force, booking and availability treat its spots as busy
(reservations/hot_sql.py, allocation.py): they are not offered, and a booking
into a closed lot is refused with `lot_closed`. The bookings already there when
it is made are each moved to the best free spot of their type for their whole
window, or, when there is none, cancelled with everything given back; a car
parked in a closed spot stays and is listed for the staff. Each outcome is a
ClosureImpact row and an event on the reservation; drivers are e-mailed once
the closure has committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.errors import Conflict, InvalidInput, NotFound
from lots.features import NO_NEEDS, SpotNeeds
from lots.models import Lot, Spot
from lots.services import lot_availability_changed
from parking.models import User
from reservations import hot_sql, notifications
from reservations.allocation import closures_over
from reservations.models import Actor, Closure, ClosureImpact, Reservation, Status
from reservations.services.placement import (
    MoveFailed,
    no_spot,
    reservation_move_locked,
)
from reservations.services.status import displace_locked, expire_locked, record_event

# Why a booking was cancelled by us: its lot (or spot) closed and no other
# spot was free. attention.py lists every "displaced_…" reason for the staff.
DISPLACED_BY_CLOSURE = "displaced_by_closure"
# What moved bookings' events and e-mails give as the reason.
MOVED_BY_CLOSURE = "closure"

Outcome = ClosureImpact.Outcome


class LotClosed(Conflict):
    code = "lot_closed"


@dataclass(frozen=True)
class ClosureResult:
    closure: Closure
    impacts: tuple[ClosureImpact, ...]

    def of(self, outcome: str) -> list[ClosureImpact]:
        return [impact for impact in self.impacts if impact.outcome == outcome]


def _aware(value: datetime, field: str) -> datetime:
    if not isinstance(value, datetime) or timezone.is_naive(value):
        raise InvalidInput(
            "Give a date and time with its time zone.", code="naive_datetime", field=field
        )
    return value


def closure_create(
    *,
    lot_id: int,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    spot_ids: Iterable[int] = (),
    actor_user: User | None = None,
    now: datetime | None = None,
) -> ClosureResult:
    """Close the lot (no spots named) or the named spots of it over
    [starts_at, ends_at), and deal with the bookings already there. One
    transaction: the closure and every move or cancellation, or nothing."""
    now = now or timezone.now()
    starts_at = _aware(starts_at, "starts_at")
    ends_at = _aware(ends_at, "ends_at")
    if ends_at <= starts_at:
        raise InvalidInput(
            "A closure ends after it starts.", code="invalid_window", field="ends_at"
        )
    if ends_at <= now:
        raise InvalidInput(
            "That closure would be over already.", code="closure_in_past", field="ends_at"
        )
    reason = " ".join((reason or "").split())
    if not reason or len(reason) > 200:
        raise InvalidInput(
            "Say why, in at most 200 characters.", code="invalid_reason", field="reason"
        )
    spot_ids = sorted({int(pk) for pk in spot_ids})
    with transaction.atomic():
        # First, before anything else is locked: wait for the bookings in flight
        # in the lot and keep new ones off until this commits (hot_sql).
        hot_sql.lot_lock_for_closure(lot_pk=lot_id)
        lot = Lot.objects.filter(pk=lot_id).first()
        if lot is None:
            raise NotFound("There is no such lot.", code="lot_not_found")
        spots = list(Spot.objects.filter(lot_id=lot_id, pk__in=spot_ids).order_by())
        if len(spots) != len(spot_ids):
            raise InvalidInput(
                "Those spots are not all in this lot.", code="invalid_spots", field="spots"
            )
        closure = Closure.objects.create(
            lot=lot,
            whole_lot=not spots,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
            created_by=actor_user,
            created_at=now,
        )
        closure.spots.set(spots)
        in_the_way = (
            Reservation.objects.select_for_update(of=("self",))
            .select_related("spot")
            .filter(
                Q(occupied_until__gt=starts_at) | Q(status=Status.PARKED, end__lte=now),
                lot_id=lot_id,
                status__in=(Status.PENDING_PAYMENT, Status.CONFIRMED, Status.PARKED),
                start__lt=ends_at,
            )
            .order_by("start", "pk")
        )
        if spots:
            in_the_way = in_the_way.filter(spot_id__in=spot_ids)
        impacts = [
            _out_of_the_closure(reservation, closure=closure, actor_user=actor_user, now=now)
            for reservation in in_the_way
        ]
        ClosureImpact.objects.bulk_create(impacts)
        lot_availability_changed(lot_id=lot_id)
    return ClosureResult(closure=closure, impacts=tuple(impacts))


def _out_of_the_closure(
    reservation: Reservation, *, closure: Closure, actor_user: User | None, now: datetime
) -> ClosureImpact:
    """Move, cancel or (a parked car) leave one booking in the closure's way."""
    impact = ClosureImpact(
        closure=closure, reservation=reservation, from_spot=reservation.spot, at=now
    )
    label = reservation.spot.label
    if reservation.status == Status.PENDING_PAYMENT and reservation.hold_expires_at <= now:
        expire_locked(reservation, at=now, actor=Actor.SYSTEM, reason="hold lapsed; lot closed")
        impact.outcome = Outcome.EXPIRED
        return impact
    if reservation.status == Status.PARKED:
        # A record can be moved, a car cannot: the staff see it and deal with it.
        impact.outcome = Outcome.PARKED
        record_event(
            reservation,
            from_status=reservation.status,
            actor=Actor.STAFF,
            actor_user=actor_user,
            at=now,
            data={"reason": "closure", "closure": closure.pk, "car_in_closed_spot": label},
        )
        return impact
    try:
        target = reservation_move_locked(reservation, now=now)
    except MoveFailed:
        displace_locked(
            reservation,
            at=now,
            reason=DISPLACED_BY_CLOSURE,
            actor=Actor.STAFF,
            actor_user=actor_user,
            data={"spot": label, "closure": closure.pk, "closure_reason": closure.reason},
        )
        impact.outcome = Outcome.CANCELLED
        return impact
    record_event(
        reservation,
        from_status=reservation.status,
        actor=Actor.STAFF,
        actor_user=actor_user,
        at=now,
        data={
            "moved_from": label,
            "moved_to": target.label,
            "reason": MOVED_BY_CLOSURE,
            "closure": closure.pk,
        },
    )
    notifications.moved_queue(
        reservation_id=reservation.pk, moved_from=label, reason=MOVED_BY_CLOSURE
    )
    impact.outcome = Outcome.MOVED
    impact.to_spot = target
    return impact


def closure_lift(
    *, closure_id: int, actor_user: User | None = None, now: datetime | None = None
) -> bool:
    """Lift a closure: its spots can be booked again. False if it was lifted
    already. Bookings it moved or cancelled stay as they are."""
    now = now or timezone.now()
    with transaction.atomic():
        closure = Closure.objects.select_for_update().filter(pk=closure_id).order_by().first()
        if closure is None:
            raise NotFound("There is no such closure.", code="closure_not_found")
        if closure.lifted_at is not None:
            return False
        closure.lifted_at = max(now, closure.created_at)
        closure.lifted_by = actor_user
        closure.save(update_fields=["lifted_at", "lifted_by"])
        lot_availability_changed(lot_id=closure.lot_id)
    return True


def no_spot_refusal(
    *, lot: Lot, start: datetime, end: datetime, needs: SpotNeeds = NO_NEEDS
) -> Conflict:
    """What a booking that found no free spot is told: `lot_closed` when the
    whole lot is closed over part of its window (until when, and why), else
    the usual no_spot_available (no_spot_with_features when it asked for some).
    Asked only once no spot was found, so that a booking that gets one pays
    nothing for closures."""
    closure = (
        closures_over(lot_id=lot.pk, start=start, end=end)
        .filter(whole_lot=True)
        .order_by("-ends_at")
        .first()
    )
    if closure is None:
        return no_spot(needs)
    tz = lot.tz
    return LotClosed(
        f"{lot.name} is closed from {closure.starts_at.astimezone(tz).isoformat()} "
        f"until {closure.ends_at.astimezone(tz).isoformat()} ({closure.reason}).",
    )
