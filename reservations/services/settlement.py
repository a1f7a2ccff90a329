"""Settling a finished reservation: bringing its payments to what the driver owes.

A reservation's settlement is explicit (models.Settlement). It becomes pending
when a transition fixes what is owed (amount_due, overstay_amount), is tried
right after that commit, and then by the scheduler with backoff while Stripe
cannot finish it (unreachable, an operation in flight). A failure that retrying
cannot cure (Stripe refused a capture, a declined overstay charge) stops the
retries and puts the reservation on the staff's "needs attention" list, where
they can retry it once they have fixed the cause.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import ApplicationError, NotFound
from payments.models import Payment
from payments.services import (
    PaymentInProgress,
    PaymentUnavailable,
    payment_charge_saved_card,
    payment_settle,
)
from reservations.models import (
    Reservation,
    ReservationExtension,
    Settlement,
    extension_payment_reference,
    payment_reference,
)
from reservations.services.notices import reservation_receipt_queue

log = logging.getLogger(__name__)

RETRY_FIRST_AFTER = timedelta(minutes=1)

# What retrying may cure: Stripe did not answer, or another call is finishing.
_TRANSIENT = (PaymentUnavailable, PaymentInProgress)


@dataclass(frozen=True)
class _Part:
    transient: list[str]
    permanent: list[str]


def _retry_delay(attempts: int) -> timedelta:
    ceiling = timedelta(minutes=settings.SETTLEMENT_RETRY_MAX_MINUTES)
    return min(RETRY_FIRST_AFTER * 2 ** max(attempts - 1, 0), ceiling)


def reservation_settle(*, reservation_id: int, now: datetime | None = None) -> str:
    """Try once to settle a pending reservation; returns its settlement state.

    The reservation's payments (the booking's and its extensions') together are
    brought to amount_due: each keeps what it can of it in turn (captured,
    released or refunded down to that; see reservation_payments) and an
    overstay is charged on the saved card, each idempotently, so a retry redoes
    only what is left. Safe to run twice or at once.
    """
    now = now or timezone.now()
    reservation = Reservation.objects.filter(pk=reservation_id).first()
    if reservation is None:
        raise NotFound("There is no such reservation.", code="reservation_not_found")
    if reservation.settlement != Settlement.PENDING:
        return reservation.settlement
    # Claim this attempt: push the next one out first, so that a crash cannot
    # spin and two sweeps never work on the same reservation at once.
    attempts = reservation.settlement_attempts + 1
    claimed = Reservation.objects.filter(
        pk=reservation.pk,
        settlement=Settlement.PENDING,
        settlement_attempts=reservation.settlement_attempts,
    ).update(settlement_attempts=attempts, settlement_next_at=now + _retry_delay(attempts))
    if not claimed:
        return Reservation.objects.values_list("settlement", flat=True).get(pk=reservation.pk)

    outcome = _Part(transient=[], permanent=[])
    reference = payment_reference(reservation)
    purse = reservation_payments(reservation)
    owed_left = reservation.amount_due or 0
    for payment, applies in purse:
        # Each payment keeps what it can of what is still owed; the rest of it
        # is released (a hold) or refunded (a charge made at once).
        keep = min(owed_left, _capacity(payment)) if applies else 0
        owed_left -= keep
        _attempt(
            outcome,
            payment.kind if payment.reference == reference else payment.reference,
            lambda p=payment, keep=keep: payment_settle(
                reference=p.reference, amount=keep, kind=p.kind
            ),
        )
    if owed_left and purse and not outcome.transient:
        outcome.permanent.append(f"booking: {owed_left} owed, but not paid")
    booking = next((p for p, _ in purse if p.kind == Payment.Kind.BOOKING), None)
    if reservation.overstay_amount:
        if booking is not None and booking.payment_method_id:
            _attempt(
                outcome,
                "overstay",
                lambda: payment_charge_saved_card(
                    reference=reference,
                    kind=Payment.Kind.OVERSTAY,
                    amount=reservation.overstay_amount,
                    currency=reservation.currency,
                    card_from_kind=Payment.Kind.BOOKING,
                ),
            )
        elif settings.STRIPE_SECRET_KEY:
            outcome.permanent.append("overstay: no saved card to charge it to")

    pending = Reservation.objects.filter(pk=reservation.pk, settlement=Settlement.PENDING)
    if outcome.permanent:
        error = "; ".join(outcome.permanent + outcome.transient)
        log.warning("Settlement of %s needs attention: %s", reservation.code, error)
        pending.update(settlement=Settlement.ATTENTION, settlement_error=error[:500])
        return Settlement.ATTENTION
    if outcome.transient:
        error = "; ".join(outcome.transient)
        log.info("Settlement of %s not finished yet: %s", reservation.code, error)
        pending.update(settlement_error=error[:500])
        return Settlement.PENDING
    if pending.update(settlement=Settlement.SETTLED, settled_at=now, settlement_error=""):
        # The receipt, once ever (a settlement reopened and finished again sends none).
        reservation_receipt_queue(reservation_id=reservation.pk, now=now)
    return Settlement.SETTLED


def _capacity(payment: Payment) -> int:
    """What a payment can keep: all of a hold, or what a charge took."""
    if payment.operation:
        return 0  # its state is about to change: settled on the next try
    if payment.status == Payment.Status.AUTHORISED:
        return payment.amount
    if payment.status == Payment.Status.CAPTURED:
        return payment.amount_captured
    return 0


def reservation_payments(reservation: Reservation) -> list[tuple[Payment, bool]]:
    """Every payment made for the reservation's parking, the booking's and its
    extensions', with whether it pays for time the reservation has (a refused
    extension's does not), in the order what is owed is taken from them:
    charges already made first (no capture needed, less to refund), then holds
    in the order they were made, booking first; refused extensions' last."""
    extensions = dict(reservation.extensions.values_list("number", "state"))
    references = [payment_reference(reservation)] + [
        extension_payment_reference(reservation, number) for number in sorted(extensions)
    ]
    applied = {payment_reference(reservation)} | {
        extension_payment_reference(reservation, number)
        for number, state in extensions.items()
        if state == ReservationExtension.State.APPLIED
    }
    kinds = (Payment.Kind.BOOKING, Payment.Kind.EXTENSION)
    found = {
        p.reference: p for p in Payment.objects.filter(reference__in=references, kind__in=kinds)
    }
    purse = [(found[r], r in applied) for r in references if r in found]
    order = {r: i for i, r in enumerate(references)}
    return sorted(
        purse,
        key=lambda pair: (
            not pair[1],
            pair[0].status != Payment.Status.CAPTURED,
            order[pair[0].reference],
        ),
    )


def _attempt(outcome: _Part, part: str, call) -> None:
    try:
        call()
    except _TRANSIENT as exc:
        outcome.transient.append(f"{part}: {exc.detail}")
    except ApplicationError as exc:
        outcome.permanent.append(f"{part}: {exc.detail} ({exc.code})")


def reservations_settle_pending(*, now: datetime | None = None, limit: int = 200) -> int:
    """Settle what could not be finished at the time (scheduler). Due ones first,
    by when they are due: a failing one backs off, so it never starves the rest."""
    now = now or timezone.now()
    due = list(
        Reservation.objects.filter(settlement=Settlement.PENDING, settlement_next_at__lte=now)
        .order_by("settlement_next_at")
        .values_list("pk", flat=True)[:limit]
    )
    settled = 0
    for reservation_id in due:
        try:
            settled += (
                reservation_settle(reservation_id=reservation_id, now=now) == Settlement.SETTLED
            )
        except Exception:  # one broken record must not stop the sweep; it is retried later
            log.exception("Settling reservation %s failed", reservation_id)
    return settled


def reservation_settlement_retry(*, reservation_id: int, now: datetime | None = None) -> str:
    """Staff: try again a settlement that needed attention, once its cause is fixed."""
    now = now or timezone.now()
    with transaction.atomic():
        updated = Reservation.objects.filter(
            pk=reservation_id, settlement=Settlement.ATTENTION
        ).update(settlement=Settlement.PENDING, settlement_next_at=now, settlement_attempts=0)
    if not updated:
        state = Reservation.objects.filter(pk=reservation_id).values_list("settlement", flat=True)
        if not state:
            raise NotFound("There is no such reservation.", code="reservation_not_found")
        return state[0]
    return reservation_settle(reservation_id=reservation_id, now=now)


def reservation_settlement_reopen(*, reservation_id: int, now: datetime | None = None) -> str:
    """A payment moved after its reservation was finished (a late authorisation:
    paying raced a cancel, or Stripe's answer came by webhook or retry): settle
    again, so that money the driver does not owe is given back."""
    now = now or timezone.now()
    Reservation.objects.filter(
        pk=reservation_id,
        amount_due__isnull=False,
        settlement__in=(Settlement.SETTLED, Settlement.PENDING),
    ).update(settlement=Settlement.PENDING, settlement_next_at=now, settled_at=None)
    return reservation_settle(reservation_id=reservation_id, now=now)
