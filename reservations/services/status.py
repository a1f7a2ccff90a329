"""The one primitive that every status write of a reservation goes through.

`write_status` changes a row its caller has locked: it writes the status, records
the event, invalidates the lot's cached availability when the spot's hold
changes, and, once what the driver owes is known, settles the payment after the
commit. `transition` is the whole use case around it: one transaction that
locks the row, checks the state and applies the change. Repeating a transition
that already happened returns the reservation as it is (gates and workers retry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from django.db import transaction

from config.errors import Conflict, NotFound
from lots.services import lot_availability_changed
from parking.models import User
from reservations import metrics, notifications
from reservations.models import Actor, Reservation, ReservationEvent, Settlement, Status
from reservations.services.settlement import reservation_settle

log = structlog.stdlib.get_logger("parkspot.reservations")


class IllegalTransition(Conflict):
    code = "illegal_transition"


@dataclass(frozen=True)
class TransitionResult:
    reservation: Reservation
    changed: bool  # False when the transition had already happened


def record_event(
    reservation: Reservation,
    *,
    from_status: str,
    actor: str,
    at: datetime,
    actor_user: User | None = None,
    data: dict | None = None,
) -> None:
    ReservationEvent.objects.create(
        reservation=reservation,
        from_status=from_status,
        to_status=reservation.status,
        actor=actor,
        actor_user=actor_user,
        at=at,
        data=data or {},
    )
    _log_on_commit(
        reservation, from_status=from_status, actor=actor, actor_user=actor_user, data=data
    )


def log_recorded_event(
    reservation: Reservation,
    *,
    from_status: str,
    actor: str,
    actor_user: User | None = None,
    data: dict | None = None,
) -> None:
    """The line record_event logs, for an event row written otherwise (a booking
    writes its first event in its own statement)."""
    _log_on_commit(
        reservation, from_status=from_status, actor=actor, actor_user=actor_user, data=data
    )


def _log_on_commit(
    reservation: Reservation,
    *,
    from_status: str,
    actor: str,
    actor_user: User | None,
    data: dict | None,
) -> None:
    """One line per recorded event, once it commits (a rolled-back change never
    happened): "reservation.<new status>" for a status change ("reservation.
    pending_payment" for a booking), else what happened (moved, refunded)."""
    to_status = reservation.status
    if from_status != to_status:
        event = f"reservation.{to_status}"
    elif data and "moved_to" in data:
        event = "reservation.moved"
    elif data and "refund" in data:
        event = "reservation.refunded"
    else:
        event = "reservation.noted"
    fields = {
        "reservation": reservation.code,
        "lot_id": reservation.lot_id,
        "from_status": from_status or None,
        "to_status": to_status,
        "actor": actor,
        "actor_user_id": actor_user.pk if actor_user is not None else None,
        "amount": reservation.price_amount,
        "currency": reservation.currency,
    }
    if reservation.amount_due is not None:
        fields["amount_due"] = reservation.amount_due
    if reservation.overstay_amount:
        fields["overstay_amount"] = reservation.overstay_amount
    if data:
        fields["details"] = dict(data)
    transaction.on_commit(lambda: log.info(event, **fields), robust=True)


def write_status(
    reservation: Reservation,
    *,
    to: Status,
    actor: str,
    at: datetime,
    actor_user: User | None = None,
    data: dict | None = None,
    frees_spot: bool = False,
) -> None:
    """Move a reservation, locked by the caller inside its transaction, to `to`.
    `frees_spot`: the change alters what the lot can offer (cached answers end)."""
    from_status = reservation.status
    reservation.status = to
    if reservation.amount_due is not None and reservation.settlement == Settlement.NONE:
        reservation.settlement = Settlement.PENDING
        reservation.settlement_next_at = at
        pk = reservation.pk
        # Stripe is called only once the change has committed; if it cannot
        # finish then, the settlement sweep will.
        transaction.on_commit(lambda: reservation_settle(reservation_id=pk), robust=True)
    reservation.save()
    record_event(
        reservation, from_status=from_status, actor=actor, actor_user=actor_user, at=at, data=data
    )
    if frees_spot:
        lot_availability_changed(lot_id=reservation.lot_id)
    metrics.status_written(reservation, to=to, actor=actor)  # once it commits


def lock_reservation(reservation_id: int) -> Reservation:
    """The reservation, its row locked until the transaction ends, with its lot and spot.

    The lock is taken on the row alone, then the row is read with its joins: a
    locking query that joined the lot would, on PostgreSQL, find nothing when a
    concurrent transaction had changed the lot (as every transition does, to end
    cached availability answers) while it waited for the row.
    """
    locked = (
        Reservation.objects.select_for_update()
        .filter(pk=reservation_id)
        .order_by()
        .values_list("pk", flat=True)
    )
    if not locked:
        raise NotFound("There is no such reservation.", code="reservation_not_found")
    return Reservation.objects.select_related("lot", "spot").get(pk=reservation_id)


def transition(
    *,
    reservation_id: int,
    to: Status,
    allowed_from: tuple[Status, ...],
    already_done: tuple[Status, ...],
    actor: str,
    actor_user: User | None,
    at: datetime,
    apply: Callable[[Reservation], dict | None] | None = None,
    frees_spot: bool = False,
    data: dict | None = None,
) -> TransitionResult:
    """Lock, check, apply, write: one transaction. `apply` may refuse (raise) or
    return more event data."""
    with transaction.atomic():
        reservation = lock_reservation(reservation_id)
        if reservation.status in already_done:
            return TransitionResult(reservation=reservation, changed=False)
        if reservation.status not in allowed_from:
            raise IllegalTransition(
                f"A reservation that is {reservation.get_status_display().lower()} "
                f"cannot become {to.label.lower()}.",
            )
        extra = apply(reservation) if apply else None
        write_status(
            reservation,
            to=to,
            actor=actor,
            actor_user=actor_user,
            at=at,
            data={**(data or {}), **(extra or {})},
            frees_spot=frees_spot,
        )
        return TransitionResult(reservation=reservation, changed=True)


def expire_locked(reservation: Reservation, *, at: datetime, actor: str, reason: str) -> None:
    """pending_payment → expired on a row the caller holds: nothing is owed, and
    a payment that was authorised after all is given back."""
    reservation.amount_due = 0
    write_status(
        reservation,
        to=Status.EXPIRED,
        actor=actor,
        at=at,
        data={"reason": reason},
        frees_spot=True,
    )


# Why a booking was cancelled by us, not by its driver: a car that had not left
# held its spot and no other was free. Staff see these (admin, needs attention).
DISPLACED = "displaced_by_overstay"


def displace_locked(
    reservation: Reservation,
    *,
    at: datetime,
    data: dict,
    reason: str = DISPLACED,
    actor: str = Actor.SYSTEM,
    actor_user: User | None = None,
) -> None:
    """Cancel a booking, locked by the caller, that has no spot left (a car that
    has not left holds its own, or its lot closed): nothing owed, the driver told."""
    reservation.amount_due = 0  # not the driver's doing: everything back
    write_status(
        reservation,
        to=Status.CANCELLED,
        actor=actor,
        actor_user=actor_user,
        at=at,
        data={"reason": reason, **data},
        frees_spot=True,
    )
    notifications.displaced_queue(reservation_id=reservation.pk, reason=reason)
