"""Extending a booking: more time in the same spot, paid on the booking's card.

    confirmed or parked, before the end ──extend──▶ same state, later end

Three steps, like a payment (no call to Stripe inside a transaction):

1. prepare: lock the reservation, check that it can be extended and that its
   spot is free from the current end to the new one, and record the extension
   (pending) with its price from the policy module;
2. pay: the price is held on the booking's saved card, or charged at once
   when the new end lies beyond a card hold's life (policy.charged_at_once),
   under the extension's own payment reference;
3. apply: lock the reservation again, look again (the spot, the state, the end
   it extends), and move the end, with the spot row locked and the exclusion
   constraint having the last word. If that fails (a booking took the time
   meanwhile, the car left), the extension is refused and its payment released.

A request repeated with its Idempotency-Key resumes or replays its extension.
Settlement treats every payment of a reservation as one purse (settlement.py).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from config.errors import ApplicationError, Conflict, IdempotencyKeyReused
from lots.models import Spot
from lots.services import lot_availability_changed
from parking.models import User
from payments.models import Payment
from payments.services import (
    PaymentDeclined,
    PaymentInProgress,
    PaymentUnavailable,
    payment_charge_saved_card,
    payment_settle,
)
from reservations import hot_sql, notifications, policy
from reservations.allocation import closures_over
from reservations.models import (
    BLOCKING_Q,
    Actor,
    Reservation,
    ReservationExtension,
    Status,
    payment_reference,
)
from reservations.rules import validate_extension, validate_opening_hours
from reservations.selectors import booking_terms
from reservations.services.closures import LotClosed
from reservations.services.placement import claim_window, is_overlap_violation
from reservations.services.settlement import reservation_payments
from reservations.services.status import lock_reservation, record_event

log = logging.getLogger(__name__)

State = ReservationExtension.State

# States whose booking can still be extended (also while the car is parked).
EXTENDABLE = (Status.CONFIRMED, Status.PARKED)

# A pending extension younger than this is being paid by another request.
PENDING_FOR = timedelta(minutes=2)


class SpotTakenAfter(Conflict):
    code = "spot_taken_after"


class ExtensionTooLate(Conflict):
    code = "extension_too_late"


class ExtensionDeclined(Conflict):
    """The saved card refused the extension: the booking is unchanged."""

    code = "payment_declined"


class ExtensionInProgress(Conflict):
    code = "extension_in_progress"


class _KeyTaken(Exception):
    """A twin request with the same Idempotency-Key recorded its extension first."""


@dataclass(frozen=True)
class ExtensionResult:
    reservation: Reservation
    extension: ReservationExtension
    replayed: bool  # True when an Idempotency-Key returned an earlier extension


def _fingerprint(new_end: datetime) -> str:
    return hashlib.sha256(f"extend:{new_end.timestamp()}".encode()).hexdigest()


def reservation_extend(
    *,
    reservation_id: int,
    end: datetime,
    actor_user: User | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> ExtensionResult:
    """Move a confirmed or parked reservation's end to `end`, in the same spot,
    for the price of the extra time (policy.extension_charge) on the saved card.

    400 for a new end that is naive, not later, or too long a booking; 409
    extension_too_late once the end has passed, spot_taken_after when the spot
    is booked after the current end, payment_declined when the card refuses
    (nothing changes, nothing is held).
    """
    now = now or timezone.now()
    key = idempotency_key or ""
    fingerprint = _fingerprint(end) if end.tzinfo else ""
    if key:
        earlier = ReservationExtension.objects.filter(
            reservation_id=reservation_id, idempotency_key=key
        ).first()
        if earlier is not None:
            if earlier.fingerprint != fingerprint:
                raise IdempotencyKeyReused(
                    "This Idempotency-Key was already used with a different request."
                )
            return _resume(earlier, now=now, replayed=True)
    try:
        extension = _prepare(
            reservation_id=reservation_id,
            new_end=end,
            actor_user=actor_user,
            key=key,
            fingerprint=fingerprint,
            now=now,
        )
    except _KeyTaken:
        # A twin request with the same key recorded its extension first.
        earlier = ReservationExtension.objects.get(
            reservation_id=reservation_id, idempotency_key=key
        )
        if earlier.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used with a different request."
            ) from None
        return _resume(earlier, now=now, replayed=True)
    return _resume(extension, now=now, replayed=False)


def reservation_extension_finish(*, extension_id: int, now: datetime | None = None) -> str:
    """Finish an extension left pending (Stripe's answer was unknown at the time,
    and the payment's retry job or a webhook has now learned it): apply it if the
    spot and the booking still allow, else refuse it and release its payment.
    Returns the extension's state."""
    now = now or timezone.now()
    extension = ReservationExtension.objects.filter(pk=extension_id).first()
    if extension is None or extension.state != State.PENDING:
        return extension.state if extension else ""
    try:
        _resume(extension, now=now, replayed=True)
    except ApplicationError as exc:
        log.info("Pending %s not applied: %s", extension, exc.detail)
    extension.refresh_from_db()
    return extension.state


def _prepare(
    *,
    reservation_id: int,
    new_end: datetime,
    actor_user: User | None,
    key: str,
    fingerprint: str,
    now: datetime,
) -> ReservationExtension:
    with transaction.atomic():
        hot_sql.lot_lock_shared(reservation_pk=reservation_id)  # before any row lock
        reservation = lock_reservation(reservation_id)
        if key and reservation.extensions.filter(idempotency_key=key).exists():
            raise _KeyTaken
        validate_extension(start=reservation.start, end=reservation.end, new_end=new_end)
        # The added time obeys the lot's hours as a booking of it would.
        validate_opening_hours(lot_pk=reservation.lot_id, start=reservation.end, end=new_end)
        _check_extendable(reservation, new_end=new_end, now=now)
        busy = reservation.extensions.filter(
            state=State.PENDING, created_at__gt=now - PENDING_FOR
        ).exists()
        if busy:
            raise ExtensionInProgress(
                "Another extension of this booking is being paid for; try again shortly."
            )
        terms = booking_terms(reservation)
        longer = policy.extended(terms, new_end)
        # Paid like the booking: held, unless the new end outlives a card hold.
        at_once = policy.charged_at_once(
            longer, now, card_hold_max=timedelta(days=settings.CARD_HOLD_MAX_DAYS)
        )
        last = reservation.extensions.order_by("-number").values_list("number", flat=True)
        number = (last.first() or 0) + 1
        return ReservationExtension.objects.create(
            reservation=reservation,
            number=number,
            old_end=reservation.end,
            new_end=new_end,
            amount=policy.extension_charge(terms, new_end),
            currency=reservation.currency,
            charged_at_once=at_once,
            idempotency_key=key,
            fingerprint=fingerprint,
            created_at=now,
        )


def _check_extendable(reservation: Reservation, *, new_end: datetime, now: datetime) -> None:
    """Refusals that depend on the reservation's state and its spot (409), checked
    with the reservation locked, before paying and again before applying."""
    if reservation.status not in EXTENDABLE:
        raise Conflict(
            f"A {reservation.get_status_display().lower()} booking cannot be extended.",
            code="illegal_transition",
        )
    if now >= reservation.end:
        raise ExtensionTooLate(
            "This booking has ended: it can be extended only before its end.", field="end"
        )
    _refuse_closed(reservation, new_end=new_end)
    if _spot_taken(reservation, new_end=new_end, now=now):
        raise SpotTakenAfter(
            f"Spot {reservation.spot.label} is booked by someone else before that time; "
            "choose an earlier end.",
            field="end",
        )
    if reservation.vehicle_plate and (
        Reservation.objects.filter(
            BLOCKING_Q,
            vehicle_plate=reservation.vehicle_plate,
            start__lt=new_end,
            occupied_until__gt=reservation.end,
        )
        .exclude(pk=reservation.pk)
        .exclude(status=Status.PENDING_PAYMENT, hold_expires_at__lte=now)
        .exists()
    ):
        raise Conflict(
            f"The vehicle {reservation.vehicle_plate} has another booking in that time.",
            code="vehicle_already_booked",
            field="end",
        )


def _refuse_closed(reservation: Reservation, *, new_end: datetime) -> None:
    """lot_closed when the lot, or the booking's spot, is closed over part of the
    added time. The caller took the lot's lock shared first (as a booking
    does): a closure being made was waited for, and one made later sees the
    new end."""
    closure = (
        closures_over(lot_id=reservation.lot_id, start=reservation.end, end=new_end)
        .filter(Q(whole_lot=True) | Q(spots=reservation.spot_id))
        .order_by("starts_at")
        .first()
    )
    if closure is not None:
        where = reservation.lot.name if closure.whole_lot else f"Spot {reservation.spot.label}"
        starts = closure.starts_at.astimezone(reservation.lot.tz).isoformat()
        raise LotClosed(
            f"{where} is closed from {starts} ({closure.reason}); choose an earlier end.",
            field="end",
        )


def _spot_taken(reservation: Reservation, *, new_end: datetime, now: datetime) -> bool:
    """With the spot's row locked (bookings lock it to take it), whether anything
    holds it over [end, new_end); lapsed holds met there are expired."""
    Spot.objects.select_for_update().filter(pk=reservation.spot_id).values_list("pk").first()
    return claim_window(spot_pk=reservation.spot_id, start=reservation.end, end=new_end, now=now)


def _resume(extension: ReservationExtension, *, now: datetime, replayed: bool) -> ExtensionResult:
    """Take an extension from where it is to its outcome: pay, then apply."""
    if extension.state == State.APPLIED:
        return _result(extension, replayed=replayed)
    if extension.state in (State.DECLINED, State.REFUSED):
        raise _refusal(extension)
    reservation = Reservation.objects.select_related("lot").get(pk=extension.reservation_id)
    if extension.amount:
        try:
            _pay(reservation, extension)
        except PaymentDeclined as declined:
            _finish(extension, State.DECLINED, error_code=declined.code, now=now)
            raise ExtensionDeclined(
                f"Your card was declined for the extension ({declined.detail}); "
                "your booking is unchanged and nothing was charged.",
            ) from None
        except (PaymentUnavailable, PaymentInProgress):
            raise  # still pending: the same request again finishes it
        except ApplicationError as refused:  # no saved card, say
            _finish(extension, State.REFUSED, error_code=refused.code, now=now)
            raise
    try:
        with transaction.atomic():
            _apply(extension, now=now)
    except ApplicationError as refused:
        _finish(extension, State.REFUSED, error_code=refused.code, now=now)
        _release(extension)
        raise
    extension.refresh_from_db()
    _charge_holds_that_would_lapse(extension, now=now)
    return _result(extension, replayed=replayed)


def _charge_holds_that_would_lapse(extension: ReservationExtension, *, now: datetime) -> None:
    """A card hold lasts about a week: once the end moves later than a hold made
    earlier can last, that hold is captured in full now, as policy.charged_at_once
    says of a booking paid so far ahead (what is not owed is refunded at
    settlement). If Stripe cannot do it now, the settlement later tries to
    capture the hold as it stands."""
    reservation = Reservation.objects.select_related("lot").get(pk=extension.reservation_id)
    longer = booking_terms(reservation)
    card_hold_max = timedelta(days=settings.CARD_HOLD_MAX_DAYS)
    for payment, applies in reservation_payments(reservation):
        if not applies or payment.status != Payment.Status.AUTHORISED:
            continue
        if not policy.charged_at_once(longer, payment.created_at, card_hold_max=card_hold_max):
            continue
        try:
            payment_settle(reference=payment.reference, amount=payment.amount, kind=payment.kind)
        except ApplicationError as exc:
            log.warning("Could not charge the hold %s before it lapses: %s", payment, exc)


def _pay(reservation: Reservation, extension: ReservationExtension) -> Payment:
    return payment_charge_saved_card(
        reference=extension.payment_reference,
        kind=Payment.Kind.EXTENSION,
        amount=extension.amount,
        currency=extension.currency,
        card_from_reference=payment_reference(reservation),
        card_from_kind=Payment.Kind.BOOKING,
        capture_later=not extension.charged_at_once,
    )


def _apply(extension: ReservationExtension, *, now: datetime) -> None:
    """Move the end, with the reservation locked and everything looked at again."""
    hot_sql.lot_lock_shared(reservation_pk=extension.reservation_id)  # before any row lock
    reservation = lock_reservation(extension.reservation_id)
    locked = ReservationExtension.objects.select_for_update().get(pk=extension.pk)
    if locked.state == State.APPLIED:
        return
    if locked.state != State.PENDING:  # a twin request's card was declined meanwhile
        raise _refusal(locked)
    if reservation.end != locked.old_end:
        raise Conflict(
            "The booking changed while paying for the extension (another extension?); "
            "the payment was released. Look at the booking and try again.",
            code="reservation_changed",
        )
    _check_extendable(reservation, new_end=locked.new_end, now=now)
    terms = policy.extended(booking_terms(reservation), locked.new_end)
    old_end, status = reservation.end, reservation.status
    reservation.end = locked.new_end
    reservation.occupied_until = locked.new_end
    reservation.price_amount = terms.price
    reservation.no_show_amount = policy.no_show_charge(terms)
    try:
        with transaction.atomic():
            reservation.save()
    except IntegrityError as exc:
        if not is_overlap_violation(exc):
            raise
        raise SpotTakenAfter(  # a booking the checks missed: the constraint's word
            f"Spot {reservation.spot.label} is booked by someone else before that time.",
            field="end",
        ) from None
    locked.state = State.APPLIED
    locked.finished_at = now
    locked.save(update_fields=["state", "finished_at"])
    record_event(
        reservation,
        from_status=status,
        actor=Actor.DRIVER,
        actor_user=reservation.user,
        at=now,
        data={
            "extended_from": old_end.isoformat(),
            "extended_to": locked.new_end.isoformat(),
            "extension": locked.number,
            "charge": locked.amount,
            "currency": locked.currency,
            "charged_at_once": locked.charged_at_once,
        },
    )
    lot_availability_changed(lot_id=reservation.lot_id)
    notifications.extended_queue(reservation_id=reservation.pk, extension_id=locked.pk)


def _finish(extension: ReservationExtension, state: str, *, error_code: str, now: datetime) -> None:
    ReservationExtension.objects.filter(pk=extension.pk, state=State.PENDING).update(
        state=state, error_code=error_code[:64], finished_at=now
    )
    extension.refresh_from_db()


def _release(extension: ReservationExtension) -> None:
    """Give back what a refused extension's payment holds or took; if Stripe
    cannot do it now, the reservation's settlement does (it keeps nothing of a
    payment beyond what is owed)."""
    if not Payment.objects.filter(
        reference=extension.payment_reference, kind=Payment.Kind.EXTENSION
    ).exists():
        return
    try:
        payment_settle(reference=extension.payment_reference, amount=0, kind=Payment.Kind.EXTENSION)
    except ApplicationError as exc:
        log.warning("Could not release the payment of %s yet: %s", extension, exc)


def _refusal(extension: ReservationExtension) -> ApplicationError:
    if extension.state == State.DECLINED:
        return ExtensionDeclined(
            "Your card was declined for this extension; your booking is unchanged."
        )
    return Conflict(
        "This extension was refused; your booking is unchanged.",
        code=extension.error_code or "extension_refused",
    )


def _result(extension: ReservationExtension, *, replayed: bool) -> ExtensionResult:
    reservation = Reservation.objects.select_related("lot", "spot").get(pk=extension.reservation_id)
    return ExtensionResult(reservation=reservation, extension=extension, replayed=replayed)
