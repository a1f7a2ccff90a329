"""What lot staff do to reservations from the admin: take a spot out of service
(moving its reservations), give money back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, InvalidInput, NotFound
from lots.models import Spot
from lots.services import lot_availability_changed
from parking.models import User
from payments.models import Payment
from payments.services import PaymentUnavailable, payment_refund
from reservations import notifications
from reservations.models import BLOCKING_STATUSES, Actor, Reservation, Status
from reservations.services.placement import MoveFailed, reservation_move_locked
from reservations.services.settlement import reservation_payments
from reservations.services.status import expire_locked, lock_reservation, record_event


class SpotHasReservations(Conflict):
    code = "spot_has_reservations"


class NoSpotToMoveTo(Conflict):
    code = "no_spot_to_move_to"


@dataclass(frozen=True)
class ReservationMove:
    code: str
    moved_from: str
    moved_to: str


@dataclass(frozen=True)
class SpotOutOfServiceResult:
    spot: Spot
    changed: bool  # False when the spot was out of service already
    moved: tuple[ReservationMove, ...] = ()
    expired: tuple[str, ...] = ()  # codes of lapsed holds expired on the way


def _codes(reservations: list[Reservation]) -> str:
    return ", ".join(reservation.code for reservation in reservations)


def spot_take_out_of_service(
    *,
    spot_id: int,
    actor_user: User | None,
    move_reservations: bool,
    actor: str = Actor.STAFF,
    now: datetime | None = None,
) -> SpotOutOfServiceResult:
    """Take a spot out of service without ever leaving a reservation on it.

    The reservations that still hold the spot (occupied_until after now) are
    each moved, for their whole window, to a free spot of the same type in the
    lot chosen by the allocation policy, with an event saying from where to
    where, and their drivers are told. If one cannot be moved, or
    `move_reservations` is False, nothing changes and a Conflict names them. A
    car parked in the spot cannot be moved by changing a record, so that refuses
    too. Unpaid holds past their TTL are expired on the way, as allocation does.
    """
    now = now or timezone.now()
    with transaction.atomic():
        # The spot's lock keeps new bookings off it while we work (allocation
        # locks a spot before it books it). Unordered and of the spot alone:
        # Spot's default ordering joins the lot, whose row would be locked too
        # and deadlock with bookings bumping its availability version.
        spot = Spot.objects.select_for_update(of=("self",)).filter(pk=spot_id).order_by().first()
        if spot is None:
            raise NotFound("There is no such spot.", code="spot_not_found")
        if not spot.is_active:
            return SpotOutOfServiceResult(spot=spot, changed=False)
        holding = list(
            Reservation.objects.select_for_update(of=("self",))
            .select_related("spot")
            .filter(spot=spot, status__in=BLOCKING_STATUSES, occupied_until__gt=now)
            .order_by("start", "pk")
        )
        parked = [r for r in holding if r.status == Status.PARKED]
        if parked:
            raise SpotHasReservations(
                f"A car is parked in spot {spot.label} ({_codes(parked)}): take the spot out "
                "of service once it has left.",
                code="spot_in_use",
            )
        lapsed = [
            r for r in holding if r.status == Status.PENDING_PAYMENT and r.hold_expires_at <= now
        ]
        live = [r for r in holding if r not in lapsed]
        if live and not move_reservations:
            raise SpotHasReservations(
                f"Spot {spot.label} still has {len(live)} reservation(s) to come: "
                f"{_codes(live)}. Move them to other spots, or wait until they are over."
            )
        moved: list[ReservationMove] = []
        stuck: list[Reservation] = []
        for reservation in live:
            try:
                target = reservation_move_locked(reservation, now=now)
            except MoveFailed:
                stuck.append(reservation)
                continue
            move = ReservationMove(
                code=reservation.code, moved_from=spot.label, moved_to=target.label
            )
            moved.append(move)
            record_event(
                reservation,
                from_status=reservation.status,
                actor=actor,
                actor_user=actor_user,
                at=now,
                data={"moved_from": move.moved_from, "moved_to": move.moved_to},
            )
            notifications.moved_queue(
                reservation_id=reservation.pk, moved_from=spot.label, reason="out_of_service"
            )
        if stuck:
            # Raising rolls back the moves made so far: all or nothing.
            raise NoSpotToMoveTo(
                f"No other {spot.get_vehicle_type_display().lower()} spot is free for the "
                f"whole window of {_codes(stuck)}; spot {spot.label} stays in service and "
                "no reservation was moved."
            )
        for reservation in lapsed:
            expire_locked(
                reservation,
                at=now,
                actor=Actor.SYSTEM,
                reason="hold lapsed; spot taken out of service",
            )
        Spot.objects.filter(pk=spot.pk).update(is_active=False)
        spot.is_active = False
        lot_availability_changed(lot_id=spot.lot_id)
    return SpotOutOfServiceResult(
        spot=spot,
        changed=True,
        moved=tuple(moved),
        expired=tuple(reservation.code for reservation in lapsed),
    )


def reservation_refund(
    *,
    reservation_id: int,
    amount: int,
    actor_user: User | None,
    actor: str = Actor.STAFF,
    reason: str = "",
    at: datetime | None = None,
) -> Payment:
    """Give back `amount` (minor units) of what the driver paid for the booking,
    and record it in the reservation's audit trail. Only captured money can be
    refunded, and never more than was kept."""
    at = at or timezone.now()
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidInput(
            "Refund a whole, positive number of minor units.", code="invalid_amount", field="amount"
        )
    reservation = Reservation.objects.filter(pk=reservation_id).first()
    if reservation is None:
        raise NotFound("There is no such reservation.", code="reservation_not_found")
    data: dict = {"refund": amount, "currency": reservation.currency}
    if reason:
        data["reason"] = reason
    # The booking's and its extensions' charges, newest first: a refund gives
    # back the extra time before the booking itself.
    kept = [p for p, applies in reversed(reservation_payments(reservation)) if p.amount_net > 0]
    if not kept:
        raise Conflict("Only captured money can be refunded.", code="payment_not_captured")
    if amount > sum(p.amount_net for p in kept):
        raise InvalidInput(
            f"At most {sum(p.amount_net for p in kept)} can be refunded.",
            code="refund_exceeds_captured",
            field="amount",
        )
    try:
        # Outside any transaction: it calls Stripe.
        left, payment = amount, None
        for paid in kept:
            part = min(left, paid.amount_net)
            if part <= 0:
                break
            payment = payment_refund(reference=paid.reference, amount=part, kind=paid.kind)
            left -= part
    except PaymentUnavailable:
        # Stripe did not answer: the retry job finishes the refund. Say so.
        _refund_record(reservation_id, actor, actor_user, at, {**data, "outcome": "pending"})
        raise
    _refund_record(reservation_id, actor, actor_user, at, data)
    notifications.refunded_queue(reservation_id=reservation_id, amount=amount)
    return payment


def _refund_record(
    reservation_id: int, actor: str, actor_user: User | None, at: datetime, data: dict
) -> None:
    with transaction.atomic():
        reservation = lock_reservation(reservation_id)
        record_event(
            reservation,
            from_status=reservation.status,
            actor=actor,
            actor_user=actor_user,
            at=at,
            data=data,
        )
