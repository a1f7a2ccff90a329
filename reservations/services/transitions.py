"""The state machine's arrows, each one use case in one transaction.

    pending_payment ──pay──▶ confirmed ──arrive──▶ parked ──leave──▶ completed
       │  └──cancel──▶ cancelled ◀──cancel──┘  └──no arrival by start+grace──▶ no_show
       └──hold lapses──▶ expired

Each goes through reservations/services/status.py (lock, check, apply, record);
what a finished reservation costs comes from reservations/policy.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import Conflict
from parking.models import User
from reservations import hot_sql, notifications, policy
from reservations.models import Actor, Reservation, Status
from reservations.selectors import booking_terms
from reservations.services.placement import MoveFailed, reservation_move_locked
from reservations.services.status import (
    IllegalTransition,
    TransitionResult,
    displace_locked,
    expire_locked,
    lock_reservation,
    transition,
)

# --- the arrows ---------------------------------------------------------------------------


def reservation_confirm(
    *,
    reservation_id: int,
    actor: str = Actor.PAYMENT,
    at: datetime | None = None,
    data: dict | None = None,
) -> TransitionResult:
    """pending_payment → confirmed, once the payment is authorised; the driver
    is e-mailed the pass (by the worker, after the commit)."""
    at = at or timezone.now()

    def apply(reservation: Reservation) -> None:
        if reservation.hold_expires_at and reservation.hold_expires_at <= at:
            raise Conflict("The hold on this spot has expired.", code="hold_expired")
        reservation.hold_expires_at = None
        notifications.pass_queue(reservation_id=reservation.pk)

    return transition(
        reservation_id=reservation_id,
        to=Status.CONFIRMED,
        allowed_from=(Status.PENDING_PAYMENT,),
        already_done=(Status.CONFIRMED, Status.PARKED, Status.COMPLETED, Status.NO_SHOW),
        actor=actor,
        actor_user=None,
        at=at,
        apply=apply,
        data=data,
    )


def reservation_cancel(
    *,
    reservation_id: int,
    actor: str = Actor.DRIVER,
    actor_user: User | None = None,
    at: datetime | None = None,
    reason: str = "",
) -> TransitionResult:
    """pending_payment or confirmed → cancelled; the spot is free again, the
    payment is brought to what the policy says cancelling now costs, and the
    driver is e-mailed what it cost (by the worker, after the commit)."""
    at = at or timezone.now()

    def apply(reservation: Reservation) -> dict:
        reservation.amount_due = policy.cancellation_charge(
            booking_terms(reservation),
            at,
            paid=reservation.status == Status.CONFIRMED,
            late_policy=settings.LATE_CANCEL_POLICY,
        )
        notifications.cancelled_queue(reservation_id=reservation.pk)  # once committed
        return {"charge": reservation.amount_due}

    return transition(
        reservation_id=reservation_id,
        to=Status.CANCELLED,
        allowed_from=(Status.PENDING_PAYMENT, Status.CONFIRMED),
        already_done=(Status.CANCELLED,),
        actor=actor,
        actor_user=actor_user,
        at=at,
        apply=apply,
        frees_spot=True,
        data={"reason": reason} if reason else None,
    )


def reservation_expire(*, reservation_id: int, at: datetime | None = None) -> TransitionResult:
    """pending_payment → expired, when the hold lapsed unpaid."""
    at = at or timezone.now()
    with transaction.atomic():
        reservation = lock_reservation(reservation_id)
        if reservation.status == Status.EXPIRED:
            return TransitionResult(reservation=reservation, changed=False)
        if reservation.status != Status.PENDING_PAYMENT:
            raise IllegalTransition(
                f"A reservation that is {reservation.get_status_display().lower()} cannot expire.",
            )
        if reservation.hold_expires_at and reservation.hold_expires_at > at:
            raise Conflict("The hold has not lapsed yet.", code="hold_active")
        expire_locked(reservation, at=at, actor=Actor.SCHEDULER, reason="hold lapsed")
        return TransitionResult(reservation=reservation, changed=True)


class SpotOccupied(Conflict):
    code = "spot_occupied"


def reservation_arrive(
    *,
    reservation_id: int,
    at: datetime,
    actor: str = Actor.GATE,
    actor_user: User | None = None,
    data: dict | None = None,
) -> TransitionResult:
    """confirmed → parked, from EARLY_ARRIVAL before the start until the end.

    If a car that has not left yet is in the reservation's spot, the driver is
    given another free spot of the type, there and then (the answer names it).
    If there is none, the arrival is refused and the booking cancelled with
    everything given back (the lot failed the driver, who must not be charged
    as a no-show); staff see it among what needs attention.
    """
    try:
        return _arrive(
            reservation_id=reservation_id, at=at, actor=actor, actor_user=actor_user, data=data
        )
    except SpotOccupied as refused:
        with transaction.atomic():
            reservation = lock_reservation(reservation_id)
            if reservation.status == Status.CONFIRMED:
                displace_locked(reservation, at=at, data={"spot": reservation.spot.label})
        raise SpotOccupied(
            f"{refused.detail} The booking is cancelled and everything paid is given back.",
        ) from None


def _arrive(
    *, reservation_id: int, at: datetime, actor: str, actor_user: User | None, data: dict | None
) -> TransitionResult:

    def apply(reservation: Reservation) -> dict | None:
        if at < reservation.start - timedelta(minutes=settings.EARLY_ARRIVAL_MINUTES):
            raise Conflict("Too early: the reservation has not started yet.", code="too_early")
        if at >= reservation.end:
            raise Conflict("Too late: the reservation has ended.", code="too_late")
        reservation.arrived_at = at
        if not hot_sql.car_parked_in(spot_pk=reservation.spot_id, other_than=reservation.pk):
            return None
        moved_from = reservation.spot.label
        try:
            target = reservation_move_locked(reservation, now=at)
        except MoveFailed:
            raise SpotOccupied(
                f"Spot {moved_from} still has a car in it and no other "
                f"{reservation.get_vehicle_type_display().lower()} spot is free.",
            ) from None
        return {"moved_from": moved_from, "moved_to": target.label, "reason": "spot_occupied"}

    # An arrival changes what availability answers depend on (a parked car
    # holds its spot past its end if it stays; a move takes another spot).
    return transition(
        reservation_id=reservation_id,
        to=Status.PARKED,
        allowed_from=(Status.CONFIRMED,),
        already_done=(Status.PARKED, Status.COMPLETED),
        actor=actor,
        actor_user=actor_user,
        at=at,
        apply=apply,
        data=data,
        frees_spot=True,
    )


def reservation_depart(
    *,
    reservation_id: int,
    at: datetime,
    actor: str = Actor.GATE,
    actor_user: User | None = None,
    data: dict | None = None,
) -> TransitionResult:
    """parked → completed. Leaving early frees the rest of the window; a car that
    stayed past its end held its spot until now, and pays for the overstay."""

    def apply(reservation: Reservation) -> None:
        if reservation.arrived_at and at < reservation.arrived_at:
            raise Conflict("A car cannot leave before it arrived.", code="before_arrival")
        terms = booking_terms(reservation)
        reservation.departed_at = at
        reservation.occupied_until = _held_until(reservation, at)
        reservation.amount_due = policy.completion_charge(terms)
        reservation.overstay_amount = policy.overstay_charge(terms, at)

    return transition(
        reservation_id=reservation_id,
        to=Status.COMPLETED,
        allowed_from=(Status.PARKED,),
        already_done=(Status.COMPLETED,),
        actor=actor,
        actor_user=actor_user,
        at=at,
        apply=apply,
        data=data,
        frees_spot=True,
    )


def _held_until(reservation: Reservation, departed_at: datetime) -> datetime:
    """Until when the departed car held its spot: its departure, never before the
    start, and never into a booking that the spot was already given to."""
    if departed_at <= reservation.end:
        return max(departed_at, reservation.start)
    held = max(reservation.occupied_until, reservation.end)
    if departed_at <= held:
        return departed_at
    next_start = hot_sql.next_blocking_start(
        spot_pk=reservation.spot_id, after=held, other_than=reservation.pk, now=departed_at
    )
    return min(departed_at, next_start) if next_start else departed_at


def reservation_mark_no_show(
    *, reservation_id: int, at: datetime | None = None
) -> TransitionResult:
    """confirmed → no_show when nobody arrived by start + grace; the rest of the
    window is freed and only the no-show charge (first 24 hours) is taken."""
    at = at or timezone.now()

    def apply(reservation: Reservation) -> None:
        terms = booking_terms(reservation)
        if at < terms.no_show_after:
            raise Conflict("The arrival grace period has not passed.", code="grace_not_over")
        if reservation.vehicle_plate and (
            Reservation.objects.filter(
                lot_id=reservation.lot_id,
                vehicle_plate=reservation.vehicle_plate,
                status=Status.PARKED,
            )
            .exclude(pk=reservation.pk)
            .exists()
        ):
            # The car never left after its previous booking: it is here (the
            # overstay sweep hands it over to this booking).
            raise Conflict("The car is parked at the lot.", code="car_present")
        reservation.occupied_until = min(max(at, reservation.start), reservation.end)
        reservation.amount_due = policy.no_show_charge(terms)

    return transition(
        reservation_id=reservation_id,
        to=Status.NO_SHOW,
        allowed_from=(Status.CONFIRMED,),
        already_done=(Status.NO_SHOW,),
        actor=Actor.SCHEDULER,
        actor_user=None,
        at=at,
        apply=apply,
        frees_spot=True,
    )
