"""Every write about reservations: booking, and each arrow of the state machine.

    pending_payment ──pay──▶ confirmed ──arrive──▶ parked ──leave──▶ completed
       │  └──cancel──▶ cancelled ◀──cancel──┘  └──no arrival by start+grace──▶ no_show
       └──hold lapses──▶ expired

Every transition is one function and one transaction: it locks the row, checks
the state, writes the new one and records an event. Repeating a transition that
already happened returns the reservation as it is (gates and workers retry).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import (
    ApplicationError,
    Conflict,
    IdempotencyKeyReused,
    InvalidInput,
    NotFound,
    PaymentFailed,
)
from lots.constants import VehicleType
from lots.models import Lot, Rate, Spot
from lots.pricing import no_show_charge, window_price
from lots.selectors import active_lots
from lots.services import lot_availability_changed
from parking.models import User, normalize_plate
from payments.models import Payment
from payments.selectors import payment_for
from payments.services import (
    payment_authorise,
    payment_charge_saved_card,
    payment_prepare,
    payment_settle,
)
from reservations import hot_sql
from reservations.allocation import best_fit_spots
from reservations.models import (
    BLOCKING_STATUSES,
    Actor,
    IdempotencyKey,
    Reservation,
    ReservationEvent,
    Status,
    payment_reference,
)
from reservations.rules import validate_window

log = logging.getLogger(__name__)

# Spots tried before answering "no spot"; each try is a savepoint, so a lost race
# costs one round trip and releases that spot's lock.
MAX_SPOT_ATTEMPTS = 10


class NoSpotAvailable(Conflict):
    code = "no_spot_available"


class IllegalTransition(Conflict):
    code = "illegal_transition"


@dataclass(frozen=True)
class BookingResult:
    reservation: Reservation
    created: bool  # False when an Idempotency-Key replayed an earlier booking


class _SpotTaken(Exception):
    pass


class _KeyTaken(Exception):
    pass


def _fingerprint(**fields: object) -> str:
    canonical = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(*, user: User, key: str, fingerprint: str) -> BookingResult | None:
    # Nearly every key is new: look it up cheaply, load the booking only if not.
    record = (
        IdempotencyKey.objects.filter(user=user, key=key)
        .values_list("fingerprint", "reservation_id")
        .first()
    )
    if record is None:
        return None
    if record[0] != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request.",
        )
    reservation = Reservation.objects.select_related("lot", "spot").get(pk=record[1])
    return BookingResult(reservation=reservation, created=False)


def reservation_create(
    *,
    user: User,
    lot_id: str,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    vehicle_plate: str = "",
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> BookingResult:
    """reserveSpot: hold the best free spot for the window until it is paid for."""
    now = now or timezone.now()
    validate_window(start=start, end=end, now=now)
    if vehicle_type not in VehicleType.values:
        raise InvalidInput(
            "Unknown vehicle type.", code="invalid_vehicle_type", field="vehicle_type"
        )
    plate = normalize_plate(vehicle_plate)
    if len(plate) > 16:
        raise InvalidInput("That plate is too long.", code="invalid_plate", field="vehicle_plate")

    fingerprint = _fingerprint(
        lot_id=lot_id,
        vehicle_type=vehicle_type,
        start=start.timestamp(),
        end=end.timestamp(),
        plate=plate,
    )
    # A repeated Idempotency-Key is caught when its row is inserted, below:
    # looking first would cost every booking a query for the rare replay.
    rate = hot_sql.booking_rate(slug=lot_id, vehicle_type=vehicle_type)
    if rate is None:
        if idempotency_key and (
            replay := _replay(user=user, key=idempotency_key, fingerprint=fingerprint)
        ):
            return replay
        lot = active_lots(lot_id=lot_id).first()
        if lot is None:
            raise NotFound("There is no such lot.", code="lot_not_found")
        raise NoSpotAvailable(
            f"{lot.name} has no spots for this vehicle type.", code="vehicle_type_not_offered"
        )
    hourly, daily_max, *lot_row = rate
    lot = Lot.from_db("default", hot_sql.BOOKING_LOT_COLUMNS, lot_row)
    price = window_price(start, end, hourly=hourly, daily_max=daily_max)
    no_show_amount = no_show_charge(start, end, hourly=hourly, daily_max=daily_max)

    try:
        with transaction.atomic():
            reservation = _allocate(
                user=user,
                lot=lot,
                vehicle_type=vehicle_type,
                start=start,
                end=end,
                plate=plate,
                price=price,
                no_show_amount=no_show_amount,
                now=now,
            )
            if idempotency_key and not hot_sql.idempotency_key_insert(
                user_pk=user.pk,
                key=idempotency_key,
                fingerprint=fingerprint,
                reservation_pk=reservation.pk,
                now=now,
            ):
                raise _KeyTaken  # a twin request committed first: undo ours
            lot_availability_changed(lot_id=lot.pk)
    except (_KeyTaken, NoSpotAvailable) as exc:
        # A replay of an earlier booking answers as that booking did, even when
        # the lot has since filled up.
        replay = idempotency_key and _replay(
            user=user, key=idempotency_key, fingerprint=fingerprint
        )
        if isinstance(exc, NoSpotAvailable):
            if replay:
                return replay
            raise
        replay = _replay(user=user, key=idempotency_key or "", fingerprint=fingerprint)
        if replay is None:  # the twin rolled back after all
            raise Conflict("Please retry the request.", code="retry") from None
        return replay
    return BookingResult(reservation=reservation, created=True)


def _allocate(
    *,
    user: User,
    lot: Lot,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    plate: str,
    price: int,
    no_show_amount: int,
    now: datetime,
) -> Reservation:
    tried: list[int] = []
    for _ in range(MAX_SPOT_ATTEMPTS):
        pick = {
            "lot_pk": lot.pk,
            "vehicle_type": vehicle_type,
            "start": start,
            "end": end,
            "now": now,
            "exclude": tried,
        }
        try:
            with transaction.atomic():
                # Move past spots another booking is taking; only when every free
                # spot is being taken, wait for one of them to know the outcome.
                row = hot_sql.pick_spot(**pick, wait=False) or hot_sql.pick_spot(**pick, wait=True)
                if row is None:
                    break
                spot = Spot.from_db("default", hot_sql.SPOT_COLUMNS, row)
                tried.append(spot.pk)
                # Our snapshot may predate a booking committed while we waited
                # for the lock: look again now that the spot is ours.
                if _claim_window(spot=spot, start=start, end=end, now=now):
                    raise _SpotTaken
                reservation = Reservation.objects.create(
                    user=user,
                    lot=lot,
                    spot=spot,
                    vehicle_type=vehicle_type,
                    vehicle_plate=plate,
                    start=start,
                    end=end,
                    occupied_until=end,
                    status=Status.PENDING_PAYMENT,
                    price_amount=price,
                    no_show_amount=no_show_amount,
                    currency=lot.currency,
                    hold_expires_at=now + timedelta(minutes=settings.HOLD_TTL_MINUTES),
                )
                _record(reservation, from_status="", actor=Actor.DRIVER, actor_user=user, at=now)
                return reservation
        except (_SpotTaken, IntegrityError):
            # IntegrityError: the exclusion constraint caught an overlap the
            # checks above missed. Either way, try the next spot.
            continue
    raise NoSpotAvailable("No spot is free for that whole window.")


def _claim_window(*, spot: Spot, start: datetime, end: datetime, now: datetime) -> bool:
    """With the spot locked, check the window is free; True if someone holds it.

    A hold past its TTL never blocks a booking, even with the scheduler down: the
    lapsed holds met here are expired on the spot.
    """
    lapsed_ids = []
    for pk, status, hold_expires_at in hot_sql.overlapping_on_spot(
        spot_pk=spot.pk, start=start, end=end
    ):
        if not (status == Status.PENDING_PAYMENT and hold_expires_at <= now):
            return True
        lapsed_ids.append(pk)
    lapsed = Reservation.objects.filter(pk__in=lapsed_ids) if lapsed_ids else []
    for reservation in lapsed:
        reservation.status = Status.EXPIRED
        reservation.save(update_fields=["status", "updated_at"])
        _record(
            reservation,
            from_status=Status.PENDING_PAYMENT,
            actor=Actor.SYSTEM,
            at=now,
            data={"reason": "hold lapsed; spot taken by a new booking"},
        )
    return False


def _record(
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


# --- transitions ---------------------------------------------------------------------


@dataclass(frozen=True)
class TransitionResult:
    reservation: Reservation
    changed: bool  # False when the transition had already happened


def _transition(
    *,
    reservation_id: int,
    to: Status,
    allowed_from: tuple[Status, ...],
    already_done: tuple[Status, ...],
    actor: str,
    actor_user: User | None,
    at: datetime,
    apply: Callable[[Reservation], None] | None = None,
    frees_spot: bool = False,
    data: dict | None = None,
) -> TransitionResult:
    with transaction.atomic():
        reservation = (
            Reservation.objects.select_for_update(of=("self",))
            .select_related("lot", "spot")
            .filter(pk=reservation_id)
            .first()
        )
        if reservation is None:
            raise NotFound("There is no such reservation.", code="reservation_not_found")
        if reservation.status in already_done:
            return TransitionResult(reservation=reservation, changed=False)
        if reservation.status not in allowed_from:
            raise IllegalTransition(
                f"A reservation that is {reservation.get_status_display().lower()} "
                f"cannot become {to.label.lower()}.",
            )
        from_status = reservation.status
        if apply:
            apply(reservation)
        reservation.status = to
        reservation.save()
        _record(
            reservation,
            from_status=from_status,
            actor=actor,
            actor_user=actor_user,
            at=at,
            data=data,
        )
        if frees_spot:
            lot_availability_changed(lot_id=reservation.lot_id)
        return TransitionResult(reservation=reservation, changed=True)


def _clamp_to_window(reservation: Reservation, moment: datetime) -> datetime:
    return min(max(moment, reservation.start), reservation.end)


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
        transaction.on_commit(lambda: _queue_pass_email(reservation.pk))

    return _transition(
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


def _queue_pass_email(reservation_id: int) -> None:
    from reservations.tasks import send_reservation_pass  # tasks import this module

    try:
        send_reservation_pass.delay(reservation_id=reservation_id)
    except Exception:  # the broker is down: the booking stands, the pass is on its page
        log.exception("Could not queue the pass e-mail of reservation %s", reservation_id)


def reservation_cancel(
    *,
    reservation_id: int,
    actor: str = Actor.DRIVER,
    actor_user: User | None = None,
    at: datetime | None = None,
    reason: str = "",
) -> TransitionResult:
    """pending_payment or confirmed → cancelled; the spot is free again.

    Before the start nothing is charged (the card hold is released); after the
    start of a confirmed reservation, LATE_CANCEL_POLICY decides.
    """
    at = at or timezone.now()

    def apply(reservation: Reservation) -> None:
        late = reservation.status == Status.CONFIRMED and at >= reservation.start
        charge = late and settings.LATE_CANCEL_POLICY == "charge"
        reservation.amount_due = reservation.price_amount if charge else 0

    result = _transition(
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
    settle_payment(result.reservation)
    return result


def reservation_expire(*, reservation_id: int, at: datetime | None = None) -> TransitionResult:
    """pending_payment → expired, when the hold lapsed unpaid."""
    at = at or timezone.now()

    def apply(reservation: Reservation) -> None:
        if reservation.hold_expires_at and reservation.hold_expires_at > at:
            raise Conflict("The hold has not lapsed yet.", code="hold_active")
        reservation.amount_due = 0

    result = _transition(
        reservation_id=reservation_id,
        to=Status.EXPIRED,
        allowed_from=(Status.PENDING_PAYMENT,),
        already_done=(Status.EXPIRED,),
        actor=Actor.SCHEDULER,
        actor_user=None,
        at=at,
        apply=apply,
        frees_spot=True,
    )
    settle_payment(result.reservation)
    return result


def reservation_arrive(
    *,
    reservation_id: int,
    at: datetime,
    actor: str = Actor.GATE,
    actor_user: User | None = None,
    data: dict | None = None,
) -> TransitionResult:
    """confirmed → parked, from EARLY_ARRIVAL before the start until the end."""

    def apply(reservation: Reservation) -> None:
        if at < reservation.start - timedelta(minutes=settings.EARLY_ARRIVAL_MINUTES):
            raise Conflict("Too early: the reservation has not started yet.", code="too_early")
        if at >= reservation.end:
            raise Conflict("Too late: the reservation has ended.", code="too_late")
        reservation.arrived_at = at

    return _transition(
        reservation_id=reservation_id,
        to=Status.PARKED,
        allowed_from=(Status.CONFIRMED,),
        already_done=(Status.PARKED, Status.COMPLETED),
        actor=actor,
        actor_user=actor_user,
        at=at,
        apply=apply,
        data=data,
    )


def reservation_depart(
    *,
    reservation_id: int,
    at: datetime,
    actor: str = Actor.GATE,
    actor_user: User | None = None,
    data: dict | None = None,
) -> TransitionResult:
    """parked → completed; leaving before the end frees the rest of the window.
    The full price is taken from the card; staying past the end is charged
    separately, per started hour at the hourly rate (each 24 h capped)."""

    def apply(reservation: Reservation) -> None:
        if reservation.arrived_at and at < reservation.arrived_at:
            raise Conflict("A car cannot leave before it arrived.", code="before_arrival")
        reservation.departed_at = at
        reservation.occupied_until = _clamp_to_window(reservation, at)
        reservation.amount_due = reservation.price_amount
        reservation.overstay_amount = _overstay_price(reservation, at)

    result = _transition(
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
    settle_payment(result.reservation)
    return result


def _overstay_price(reservation: Reservation, departed_at: datetime) -> int:
    if departed_at <= reservation.end:
        return 0
    rate = Rate.objects.filter(
        lot_id=reservation.lot_id, vehicle_type=reservation.vehicle_type
    ).first()
    if rate is None:  # the lot stopped offering this type since: nothing to charge by
        return 0
    return window_price(
        reservation.end, departed_at, hourly=rate.hourly_amount, daily_max=rate.daily_max_amount
    )


def no_show_grace(lot: Lot) -> timedelta:
    minutes = lot.no_show_grace_minutes
    return timedelta(minutes=settings.NO_SHOW_GRACE_MINUTES if minutes is None else minutes)


def reservation_mark_no_show(
    *, reservation_id: int, at: datetime | None = None
) -> TransitionResult:
    """confirmed → no_show when nobody arrived by start + grace; the rest of the
    window is freed and only the no-show charge (first 24 hours) is taken."""
    at = at or timezone.now()

    def apply(reservation: Reservation) -> None:
        if at < reservation.start + no_show_grace(reservation.lot):
            raise Conflict("The arrival grace period has not passed.", code="grace_not_over")
        reservation.occupied_until = _clamp_to_window(reservation, at)
        reservation.amount_due = reservation.no_show_amount

    result = _transition(
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
    settle_payment(result.reservation)
    return result


# --- payment -------------------------------------------------------------------------


def reservation_payment_prepare(*, reservation: Reservation) -> Payment | None:
    """What a client needs to pay for a pending reservation (a SetupIntent's
    client secret); None once there is nothing left to pay, or when payments
    are not configured."""
    if not settings.STRIPE_SECRET_KEY:
        return None
    if reservation.status != Status.PENDING_PAYMENT:
        return payment_for(reference=payment_reference(reservation))
    return payment_prepare(
        reference=payment_reference(reservation),
        user=reservation.user,
        amount=reservation.price_amount,
        currency=reservation.currency,
    )


def reservation_complete(
    *, reservation_id: int, payment_method_id: str, now: datetime | None = None
) -> Reservation:
    """completeReservation: pay with a card (a PaymentMethod id) and confirm.

    The card is authorised for the full price (a hold captured at settlement),
    or, when the reservation ends beyond how long card holds last, charged at
    once and settled later by refunding the difference. A decline leaves the
    reservation pending so that the driver can retry until the hold lapses.
    """
    now = now or timezone.now()
    reservation = Reservation.objects.select_related("user").get(pk=reservation_id)
    if reservation.status in (Status.CONFIRMED, Status.PARKED, Status.COMPLETED, Status.NO_SHOW):
        return reservation  # paid already: a retried request gets the same answer
    if reservation.status == Status.EXPIRED or (
        reservation.status == Status.PENDING_PAYMENT and reservation.hold_expires_at <= now
    ):
        if reservation.status == Status.PENDING_PAYMENT:
            reservation_expire(reservation_id=reservation.pk, at=now)
        raise Conflict(
            "The hold on this spot has expired; nothing was charged. Book again.",
            code="hold_expired",
        )
    if reservation.status != Status.PENDING_PAYMENT:
        raise IllegalTransition(
            f"A {reservation.get_status_display().lower()} reservation cannot be paid for."
        )

    capture_later = reservation.end <= now + timedelta(days=settings.CARD_HOLD_MAX_DAYS)
    payment_authorise(
        reference=payment_reference(reservation),
        user=reservation.user,
        amount=reservation.price_amount,
        currency=reservation.currency,
        payment_method_id=payment_method_id,
        capture_later=capture_later,
    )
    try:
        # The hold was valid when payment started: that is what counts.
        return reservation_confirm(reservation_id=reservation.pk, at=now).reservation
    except IllegalTransition:
        # Expired or cancelled while the card was being charged: give it back.
        settle_payment(Reservation.objects.get(pk=reservation.pk), amount=0)
        raise Conflict(
            "The hold on this spot ended while paying; the payment was released.",
            code="hold_expired",
        ) from None


def settle_payment(reservation: Reservation, amount: int | None = None) -> bool:
    """Bring the reservation's payments to what the driver owes: the booking
    payment to amount_due, and any overstay charged. Idempotent; runs after the
    state change committed; what fails here the scheduler retries. True once
    everything is settled."""
    due = reservation.amount_due if amount is None else amount
    if due is None:
        return False
    reference = payment_reference(reservation)
    try:
        if payment_for(reference=reference) is not None:
            payment_settle(reference=reference, amount=due)
        if reservation.overstay_amount:
            payment_charge_saved_card(
                reference=reference,
                kind=Payment.Kind.OVERSTAY,
                amount=reservation.overstay_amount,
                currency=reservation.currency,
                card_from_kind=Payment.Kind.BOOKING,
            )
    except PaymentFailed as exc:
        # A declined overstay charge is final here: staff follow it up.
        log.warning("Payment of %s failed (%s): %s", reservation.code, exc.code, exc)
    except ApplicationError as exc:
        log.warning("Payment of %s not settled yet (%s): %s", reservation.code, exc.code, exc)
        return False
    Reservation.objects.filter(pk=reservation.pk, settled_at__isnull=True).update(
        settled_at=timezone.now()
    )
    return True


def reservations_settle_pending(*, limit: int = 200) -> int:
    """Settle what settle_payment could not finish at the time (scheduler)."""
    pending = Reservation.objects.filter(amount_due__isnull=False, settled_at__isnull=True)
    settled = 0
    for reservation in pending.order_by("updated_at")[:limit]:
        settled += settle_payment(reservation)
    return settled


def holds_expire_lapsed(*, now: datetime | None = None, limit: int = 500) -> int:
    """Expire unpaid holds past their TTL (scheduler). Safe to run twice or at
    once: each expiry locks its row and is a no-op when already done."""
    now = now or timezone.now()
    lapsed = Reservation.objects.filter(
        status=Status.PENDING_PAYMENT, hold_expires_at__lte=now
    ).values_list("pk", flat=True)
    expired = 0
    for reservation_id in list(lapsed[:limit]):
        try:
            expired += reservation_expire(reservation_id=reservation_id, at=now).changed
        except Conflict:  # paid meanwhile
            continue
    return expired


def no_shows_declare(*, now: datetime | None = None, limit: int = 500) -> int:
    """Declare confirmed reservations nobody arrived for by start + grace, and
    charge the no-show charge (scheduler). Safe to run twice or at once: the
    transition locks the row, and the capture is claimed once and idempotent."""
    now = now or timezone.now()
    # Started ones only; the per-lot grace is checked on the few that remain.
    started = (
        Reservation.objects.filter(status=Status.CONFIRMED, start__lte=now)
        .select_related("lot")
        .order_by("start")[:limit]
    )
    declared = 0
    for reservation in started:
        if now < reservation.start + no_show_grace(reservation.lot):
            continue
        try:
            declared += reservation_mark_no_show(reservation_id=reservation.pk, at=now).changed
        except Conflict:  # arrived meanwhile
            continue
    return declared


# --- lot staff ------------------------------------------------------------------------
# Written for the admin (reservations/admin.py), where staff run their lots.

from payments.services import PaymentUnavailable, payment_refund  # noqa: E402


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
    where. If one cannot be moved, or `move_reservations` is False, nothing
    changes and a Conflict names them. A car parked in the spot cannot be moved
    by changing a record, so that refuses too. Unpaid holds past their TTL are
    expired on the way, as allocation does.
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
            Reservation.objects.select_for_update()
            .filter(spot=spot, status__in=BLOCKING_STATUSES, occupied_until__gt=now)
            .order_by("start", "pk")
        )
        lapsed = [
            r for r in holding if r.status == Status.PENDING_PAYMENT and r.hold_expires_at <= now
        ]
        live = [r for r in holding if r not in lapsed]
        parked = [r for r in live if r.status == Status.PARKED]
        if parked:
            raise SpotHasReservations(
                f"A car is parked in spot {spot.label} ({_codes(parked)}): take the spot out "
                "of service once it has left.",
                code="spot_in_use",
            )
        if live and not move_reservations:
            raise SpotHasReservations(
                f"Spot {spot.label} still has {len(live)} reservation(s) to come: "
                f"{_codes(live)}. Move them to other spots, or wait until they are over."
            )
        moved: list[ReservationMove] = []
        stuck: list[Reservation] = []
        for reservation in live:
            target = _reservation_move(reservation, away_from=spot, now=now)
            if target is None:
                stuck.append(reservation)
                continue
            move = ReservationMove(
                code=reservation.code, moved_from=spot.label, moved_to=target.label
            )
            moved.append(move)
            _record(
                reservation,
                from_status=reservation.status,
                actor=actor,
                actor_user=actor_user,
                at=now,
                data={"moved_from": move.moved_from, "moved_to": move.moved_to},
            )
        if stuck:
            # Raising rolls back the moves made so far: all or nothing.
            raise NoSpotToMoveTo(
                f"No other {spot.get_vehicle_type_display().lower()} spot is free for the "
                f"whole window of {_codes(stuck)}; spot {spot.label} stays in service and "
                "no reservation was moved."
            )
        for reservation in lapsed:
            reservation.status = Status.EXPIRED
            reservation.amount_due = 0
            reservation.save(update_fields=["status", "amount_due", "updated_at"])
            _record(
                reservation,
                from_status=Status.PENDING_PAYMENT,
                actor=Actor.SYSTEM,
                at=now,
                data={"reason": "hold lapsed; spot taken out of service"},
            )
        # An update, not save(): the post_save signal would bump the version a
        # second time.
        Spot.objects.filter(pk=spot.pk).update(is_active=False)
        spot.is_active = False
        lot_availability_changed(lot_id=spot.lot_id)
    for reservation in lapsed:
        settle_payment(reservation)  # after the commit: it may call Stripe
    return SpotOutOfServiceResult(
        spot=spot,
        changed=True,
        moved=tuple(moved),
        expired=tuple(reservation.code for reservation in lapsed),
    )


def _reservation_move(reservation: Reservation, *, away_from: Spot, now: datetime) -> Spot | None:
    """Put the reservation on the best free spot for its whole window; None if none is.

    As in _allocate: lock the candidate (skipping spots another transaction is
    booking), check again under the lock, and let the exclusion constraint have
    the last word.
    """
    tried = [away_from.pk]
    for _ in range(MAX_SPOT_ATTEMPTS):
        candidates = best_fit_spots(
            lot_id=reservation.lot_id,
            vehicle_type=reservation.vehicle_type,
            start=reservation.start,
            end=reservation.occupied_until,
            now=now,
            exclude=tried,
        )
        try:
            with transaction.atomic():
                target = candidates.select_for_update(skip_locked=True).first()
                if target is None:
                    target = candidates.select_for_update().first()
                if target is None:
                    return None
                tried.append(target.pk)
                if _claim_window(
                    spot=target, start=reservation.start, end=reservation.occupied_until, now=now
                ):
                    raise _SpotTaken
                reservation.spot = target
                reservation.save(update_fields=["spot", "updated_at"])
                return target
        except (_SpotTaken, IntegrityError):
            reservation.spot = away_from
            continue
    return None


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
    try:
        # Outside any transaction: it calls Stripe.
        payment = payment_refund(reference=payment_reference(reservation), amount=amount)
    except PaymentUnavailable:
        # Stripe did not answer: the retry job finishes the refund. Say so.
        _refund_record(reservation_id, actor, actor_user, at, {**data, "outcome": "pending"})
        raise
    _refund_record(reservation_id, actor, actor_user, at, data)
    return payment


def _refund_record(
    reservation_id: int, actor: str, actor_user: User | None, at: datetime, data: dict
) -> None:
    with transaction.atomic():
        reservation = Reservation.objects.select_for_update().get(pk=reservation_id)
        _record(
            reservation,
            from_status=reservation.status,
            actor=actor,
            actor_user=actor_user,
            at=at,
            data=data,
        )
