"""Reservations listening to payments (which know them only by reference)."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from config.errors import ApplicationError
from payments.models import Payment
from payments.signals import payment_changed
from reservations.models import (
    PAYMENT_REFERENCE_PREFIX,
    Reservation,
    Settlement,
    Status,
    reservation_code_of,
)

log = logging.getLogger(__name__)


@receiver(payment_changed)
def confirm_when_paid(sender, *, reference: str, kind: str, status: str, **kwargs) -> None:
    """A payment Stripe authorised without our hearing back at the time (a lost
    response, settled by a webhook or reconciliation) confirms the booking; if
    the booking is over by then, it is settled again so the money goes back."""
    from reservations.services import reservation_confirm, reservation_settlement_reopen

    if not reference.startswith(PAYMENT_REFERENCE_PREFIX):
        return
    if status not in (Payment.Status.AUTHORISED, Payment.Status.CAPTURED):
        return
    if kind == Payment.Kind.EXTENSION:
        _settle_again_if_over(reference)
        return
    if kind != Payment.Kind.BOOKING:
        return
    reservation = Reservation.objects.filter(
        code=reference.removeprefix(PAYMENT_REFERENCE_PREFIX)
    ).first()
    if reservation is None:
        return
    if reservation.status == Status.PENDING_PAYMENT:
        try:
            reservation_confirm(reservation_id=reservation.pk)
        except ApplicationError as exc:
            log.warning("Paid reservation %s not confirmed: %s", reservation.code, exc)
    elif reservation.status in (Status.EXPIRED, Status.CANCELLED):
        reservation_settlement_reopen(reservation_id=reservation.pk)


def _settle_again_if_over(reference: str) -> None:
    """An extension's payment that went through after its reservation was settled
    (Stripe's answer came late, by webhook or the retry job): settle again, so
    that money not owed is given back."""
    from reservations.services import reservation_settlement_reopen

    code = reservation_code_of(reference)
    # A settlement still pending settles it anyway (and its own captures
    # send this news too: answering those would settle within a settlement).
    reservation = Reservation.objects.filter(code=code, settlement=Settlement.SETTLED).first()
    if reservation is not None:
        reservation_settlement_reopen(reservation_id=reservation.pk)
