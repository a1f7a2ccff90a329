"""A driver's booking: reserve a spot for a window (reserveSpot), then pay for it
(completeReservation).

A booking holds its spot by the database alone; no payment service is called
until the driver pays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from config.errors import ApplicationError, Conflict, IdempotencyKeyReused, InvalidInput, NotFound
from config.plates import normalize_plate
from lots.constants import VehicleType
from lots.features import SpotNeeds, spot_needs
from lots.models import Lot, Spot
from lots.selectors import active_lots, lot_tariff
from lots.services import lot_availability_changed
from parking.models import User
from payments.models import Payment
from payments.services import PaymentUnavailable, payment_authorise, payment_prepare
from reservations import hot_sql, metrics, policy
from reservations.models import (
    Actor,
    IdempotencyKey,
    Reservation,
    ReservationEvent,
    Status,
    new_reservation_code,
    payment_reference,
)
from reservations.rules import validate_opening_hours, validate_window
from reservations.selectors import booking_terms
from reservations.services.closures import no_spot_refusal
from reservations.services.placement import NoSpotAvailable, no_spot, place
from reservations.services.settlement import reservation_settlement_reopen
from reservations.services.status import IllegalTransition, log_recorded_event
from reservations.services.transitions import (
    reservation_confirm,
    reservation_expire,
)


class VehicleAlreadyBooked(Conflict):
    code = "vehicle_already_booked"


class TooManyUnpaidHolds(Conflict):
    code = "too_many_unpaid_holds"


@dataclass(frozen=True)
class BookingResult:
    reservation: Reservation
    created: bool  # False when an Idempotency-Key replayed an earlier booking


class _KeyTaken(Exception):
    pass


class _FirstRefusal(Exception):
    """A refusal of a request whose Idempotency-Key (if any) never booked: there
    is no earlier answer to look for."""

    def __init__(self, refusal: ApplicationError) -> None:
        super().__init__(refusal)
        self.refusal = refusal


def _fingerprint(**fields: object) -> str:
    canonical = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(*, user: User, key: str | None, fingerprint: str) -> BookingResult | None:
    """The booking an earlier request with this key made, if any."""
    if not key:
        return None
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
    features: Iterable[str] = (),
    vehicle_height_cm: int | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> BookingResult:
    """reserveSpot: hold the best free spot for the window until it is paid for;
    with `features` (lots/features.py) or a `vehicle_height_cm`, only a spot
    that has every feature and room for the vehicle.

    A request repeated with its Idempotency-Key gets the first answer, even once
    the window has started or the lot has filled up since; refusals are checked
    only for requests that did not book before.
    """
    now = now or timezone.now()
    plate = normalize_plate(vehicle_plate)
    needs = spot_needs(features, vehicle_height_cm)
    fingerprint = _fingerprint(
        lot_id=lot_id,
        vehicle_type=vehicle_type,
        start=start.timestamp() if start.tzinfo else str(start),
        end=end.timestamp() if end.tzinfo else str(end),
        plate=plate,
        # Only when asked: a plain booking's fingerprint is what it always was.
        **({"features": needs.stored, "height": needs.height_cm} if needs else {}),
    )
    try:
        return _book(
            user=user,
            lot_id=lot_id,
            vehicle_type=vehicle_type,
            start=start,
            end=end,
            plate=plate,
            needs=needs,
            key=idempotency_key,
            fingerprint=fingerprint,
            now=now,
        )
    except _KeyTaken:
        # A twin request committed first: ours was undone; answer as it did.
        replay = _replay(user=user, key=idempotency_key, fingerprint=fingerprint)
        if replay is None:  # the twin rolled back after all
            metrics.booking_refused(reason="retry")
            raise Conflict("Please retry the request.", code="retry") from None
        return replay
    except _FirstRefusal as first:
        metrics.booking_refused(reason=first.refusal.code)
        raise first.refusal from None
    except ApplicationError as refused:
        # Looking first would cost every booking a query for the rare replay:
        # a refusal is the moment to check whether this request booked before.
        replay = _replay(user=user, key=idempotency_key, fingerprint=fingerprint)
        if replay is not None:
            return replay
        metrics.booking_refused(reason=refused.code)
        raise


def _book(
    *,
    user: User,
    lot_id: str,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    plate: str,
    needs: SpotNeeds,
    key: str | None,
    fingerprint: str,
    now: datetime,
) -> BookingResult:
    validate_window(start=start, end=end, now=now)
    if vehicle_type not in VehicleType.values:
        raise InvalidInput(
            "Unknown vehicle type.", code="invalid_vehicle_type", field="vehicle_type"
        )
    if len(plate) > 16:
        raise InvalidInput("That plate is too long.", code="invalid_plate", field="vehicle_plate")
    with transaction.atomic():
        try:
            reservation, booked = _reserve(
                user=user,
                lot_id=lot_id,
                vehicle_type=vehicle_type,
                start=start,
                end=end,
                plate=plate,
                needs=needs,
                key=key,
                fingerprint=fingerprint,
                now=now,
            )
        except (ApplicationError, _FirstRefusal) as refused:
            # Refused before anything was written: the transaction ends with a
            # commit. A rollback would make psycopg forget every statement
            # prepared on the connection (and PostgreSQL plan them all again).
            refusal = refused
        else:
            refusal = None
            if not booked:
                # Limits checked already, under the locks this transaction holds.
                _book_step_by_step(
                    reservation, user=user, key=key, fingerprint=fingerprint, now=now
                )
            log_recorded_event(reservation, from_status="", actor=Actor.DRIVER, actor_user=user)
            metrics.booking_made(vehicle_type=vehicle_type)  # once it commits
    if refusal is not None:
        raise refusal
    return BookingResult(reservation=reservation, created=True)


def _reserve(
    *,
    user: User,
    lot_id: str,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    plate: str,
    needs: SpotNeeds,
    key: str | None,
    fingerprint: str,
    now: datetime,
) -> tuple[Reservation, bool]:
    """The checks and, on PostgreSQL, the booking in one statement: (the
    reservation, whether it was booked). It writes nothing when it refuses."""
    # The driver's and the plate's bookings are serialised from here on (see
    # _check_limits), in the statement that reads the rate.
    rate = hot_sql.booking_rate(slug=lot_id, vehicle_type=vehicle_type, lock_for=(user.pk, plate))
    if rate is None:
        lot = active_lots(lot_id=lot_id).first()
        if lot is None:
            raise NotFound("There is no such lot.", code="lot_not_found")
        raise NoSpotAvailable(
            f"{lot.name} has no spots for this vehicle type.", code="vehicle_type_not_offered"
        )
    hourly, daily_max, *lot_row, has_hours, has_rules = rate
    lot = Lot.from_db("default", hot_sql.BOOKING_LOT_COLUMNS, lot_row)
    if has_hours:
        validate_opening_hours(lot_pk=lot.pk, start=start, end=end)
    # The rules in force now are the booking's for good (Reservation.tariff_rules):
    # one more query, only at a lot with flex rates for the type.
    tariff = lot_tariff(
        lot_pk=lot.pk,
        vehicle_type=vehicle_type,
        hourly=hourly,
        daily_max=daily_max,
        has_rules=has_rules,
        after=start,
    )
    reservation = Reservation(
        user=user,
        lot=lot,
        vehicle_type=vehicle_type,
        vehicle_plate=plate,
        requested_features=needs.stored,
        vehicle_height_cm=needs.height_cm,
        start=start,
        end=end,
        occupied_until=end,
        status=Status.PENDING_PAYMENT,
        price_amount=tariff.window_price(start, end),
        no_show_amount=tariff.no_show_charge(start, end),
        hourly_amount=hourly,
        daily_max_amount=daily_max,
        tariff_rules=tariff.snapshot(),
        currency=lot.currency,
        hold_expires_at=now + timedelta(minutes=settings.HOLD_TTL_MINUTES),
    )
    if connection.vendor != "postgresql":
        _check_limits(user=user, plate=plate, start=start, end=end, now=now)
        return reservation, False
    booked = _book_in_one_statement(
        reservation, user=user, key=key, fingerprint=fingerprint, now=now
    )
    return reservation, booked


def _book_in_one_statement(
    reservation: Reservation, *, user: User, key: str | None, fingerprint: str, now: datetime
) -> bool:
    """PostgreSQL: the whole booking in one statement (hot_sql.book). False when
    the spot it picked could not be taken as it stood (a lapsed hold in the
    way, or a booking committed since the statement began): then the caller
    books step by step, which deals with both."""
    booked = hot_sql.book(
        reservation=reservation,
        event=_first_event(reservation, user=user, now=now),
        max_unpaid=settings.MAX_UNPAID_HOLDS,
        plate_horizon=_plate_horizon(now),
        key=key,
        fingerprint=fingerprint,
        now=now,
        needs=reservation.needs,
    )
    if booked.spot is None:
        try:
            _refuse_over_limits(
                unpaid=booked.unpaid_holds,
                plate_busy=booked.plate_busy,
                plate=reservation.vehicle_plate,
            )
            if not booked.lot_closed:
                raise no_spot(reservation.needs)
            raise no_spot_refusal(
                lot=reservation.lot,
                start=reservation.start,
                end=reservation.end,
                needs=reservation.needs,
            )
        except ApplicationError as refused:
            if booked.key_known:
                raise  # the request's key booked before: reservation_create replays it
            # The statement saw every booking of this key (the driver's lock):
            # a refusal costs no look for an earlier answer.
            raise _FirstRefusal(refused) from None
    if booked.reservation_pk is None:
        reservation.code = new_reservation_code()  # in case the clash was the code's
        return False
    if booked.key_taken:
        raise _KeyTaken  # undoes ours
    reservation.pk = booked.reservation_pk
    reservation.spot = Spot.from_db("default", hot_sql.SPOT_COLUMNS, booked.spot)
    reservation._state.adding = False
    reservation._state.db = "default"
    return True


def _book_step_by_step(
    reservation: Reservation, *, user: User, key: str | None, fingerprint: str, now: datetime
) -> None:
    """Place, insert, record, remember the key and bump the lot's version, one
    statement each (SQLite, and PostgreSQL's rare fallback)."""

    def insert(spot: Spot) -> Reservation:
        reservation.spot = spot
        reservation.save(force_insert=True)
        _first_event(reservation, user=user, now=now).save(force_insert=True)
        return reservation

    try:
        place(
            lot_pk=reservation.lot_id,
            vehicle_type=reservation.vehicle_type,
            start=reservation.start,
            end=reservation.end,
            now=now,
            write=insert,
            # A refusal is answered at once, not after waiting behind the bookings
            # that are taking the last free spots (they hold them, and nearly always
            # keep them).
            wait_for_locked=False,
            needs=reservation.needs,
        )
    except NoSpotAvailable:
        raise no_spot_refusal(
            lot=reservation.lot,
            start=reservation.start,
            end=reservation.end,
            needs=reservation.needs,
        ) from None
    if key and not hot_sql.idempotency_key_insert(
        user_pk=user.pk,
        key=key,
        fingerprint=fingerprint,
        reservation_pk=reservation.pk,
        now=now,
    ):
        raise _KeyTaken  # undoes ours
    lot_availability_changed(lot_id=reservation.lot_id)


def _first_event(reservation: Reservation, *, user: User, now: datetime) -> ReservationEvent:
    return ReservationEvent(
        reservation=reservation if reservation.pk else None,
        from_status="",
        to_status=reservation.status,
        actor=Actor.DRIVER,
        actor_user=user,
        at=now,
        data={},
    )


def _plate_horizon(now: datetime) -> datetime:
    """How far ahead a car parked past its end counts as still there."""
    return now + timedelta(minutes=settings.OVERSTAY_LOOKAHEAD_MINUTES)


def _check_limits(*, user: User, plate: str, start: datetime, end: datetime, now: datetime) -> None:
    """A driver holds at most MAX_UNPAID_HOLDS spots unpaid at once, and a vehicle
    is in one place at a time, in any lot. The driver's and the plate's bookings
    are serialised first (booking_rate took the locks), so racing requests
    cannot both pass a check."""
    unpaid = hot_sql.unpaid_holds(user_pk=user.pk, now=now, at_most=settings.MAX_UNPAID_HOLDS)
    busy = (
        unpaid < settings.MAX_UNPAID_HOLDS
        and bool(plate)
        and hot_sql.plate_busy(
            plate=plate, start=start, end=end, now=now, horizon=_plate_horizon(now)
        )
    )
    _refuse_over_limits(unpaid=unpaid, plate_busy=busy, plate=plate)


def _refuse_over_limits(*, unpaid: int, plate_busy: bool, plate: str) -> None:
    if unpaid >= settings.MAX_UNPAID_HOLDS:
        raise TooManyUnpaidHolds(
            f"You already have {settings.MAX_UNPAID_HOLDS} bookings waiting for payment: "
            "pay for one or cancel it, or wait until its hold runs out, then book again.",
        )
    if plate_busy:
        raise VehicleAlreadyBooked(
            f"The vehicle {plate} already has a booking for part of that time.",
            field="vehicle_plate",
        )


# --- paying -----------------------------------------------------------------------------


class ReservationCancelled(Conflict):
    code = "reservation_cancelled"


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
    reservation = Reservation.objects.select_related("user", "lot").get(pk=reservation_id)
    if reservation.status in (Status.CONFIRMED, Status.PARKED, Status.COMPLETED, Status.NO_SHOW):
        return reservation  # paid already: a retried request gets the same answer
    _check_payable(reservation, now)
    charge_now = policy.charged_at_once(
        booking_terms(reservation), now, card_hold_max=timedelta(days=settings.CARD_HOLD_MAX_DAYS)
    )
    payment = payment_authorise(
        reference=payment_reference(reservation),
        user=reservation.user,
        amount=reservation.price_amount,
        currency=reservation.currency,
        payment_method_id=payment_method_id,
        capture_later=not charge_now,
    )
    try:
        if payment.status not in (Payment.Status.AUTHORISED, Payment.Status.CAPTURED):
            # Settled otherwise meanwhile (the booking ended and the money was
            # given back, or another attempt failed): say which below.
            raise Conflict("The payment did not go through.", code="payment_not_authorised")
        # The hold was valid when payment started: that is what counts.
        return reservation_confirm(reservation_id=reservation.pk, at=now).reservation
    except Conflict as refused:
        # Cancelled or expired while the card was being charged: give it back.
        reservation_settlement_reopen(reservation_id=reservation.pk)
        reservation.refresh_from_db()
        if reservation.status == Status.CANCELLED:
            raise ReservationCancelled(
                "This reservation was cancelled while paying; the payment was released.",
            ) from None
        if reservation.status == Status.EXPIRED:
            raise Conflict(
                "The hold on this spot ended while paying; the payment was released.",
                code="hold_expired",
            ) from None
        if reservation.status == Status.PENDING_PAYMENT:
            raise Conflict(
                "The payment did not go through; nothing was charged. Try again.",
                code=refused.code,
            ) from None
        return reservation  # confirmed by the payment's own news meanwhile


def reservation_payment_setup(*, reservation_id: int, now: datetime | None = None) -> str:
    """The client secret of a SetupIntent, for a browser to turn the driver's card
    into a PaymentMethod with Stripe.js (which then completes the reservation).
    Asked for when the driver presses Pay: viewing pages calls no payment service."""
    now = now or timezone.now()
    reservation = Reservation.objects.select_related("user").get(pk=reservation_id)
    _check_payable(reservation, now)
    payment = payment_prepare(
        reference=payment_reference(reservation),
        user=reservation.user,
        amount=reservation.price_amount,
        currency=reservation.currency,
    )
    if not payment.setup_client_secret:
        raise PaymentUnavailable("The payment service cannot be reached; try again.")
    return payment.setup_client_secret


def _check_payable(reservation: Reservation, now: datetime) -> None:
    if reservation.status == Status.CANCELLED:
        raise ReservationCancelled("This reservation was cancelled; nothing was charged.")
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
