"""Reservations listening to payments (which know them only by reference)."""

from __future__ import annotations

import logging

from django.dispatch import receiver
from django.utils import timezone

from config.errors import ApplicationError
from payments.models import Payment
from payments.signals import payment_changed
from reservations.models import (
    EXTENSION_REFERENCE_SEPARATOR,
    PAYMENT_REFERENCE_PREFIX,
    Reservation,
    ReservationExtension,
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
        _finish_extension(reference)
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


def _finish_extension(reference: str) -> None:
    """An extension's payment that went through while nobody was waiting for it
    (Stripe's answer came late, by webhook or the retry job): the extension is
    applied if the booking and its spot still allow it, else its money is given
    back; once the reservation is settled, it is settled again."""
    from reservations.services import reservation_settlement_reopen
    from reservations.services.extension import PENDING_FOR, reservation_extension_finish

    code = reservation_code_of(reference)
    number = reference.rsplit(EXTENSION_REFERENCE_SEPARATOR, 1)[-1]
    pending = ReservationExtension.objects.filter(
        reservation__code=code,
        number=int(number) if number.isdigit() else 0,
        state=ReservationExtension.State.PENDING,
        # A request still paying finishes its own extension.
        created_at__lte=timezone.now() - PENDING_FOR / 2,
    ).first()
    if pending is not None:
        reservation_extension_finish(extension_id=pending.pk)
    # A settlement still pending settles it anyway (and its own captures
    # send this news too: answering those would settle within a settlement).
    reservation = Reservation.objects.filter(code=code, settlement=Settlement.SETTLED).first()
    if reservation is not None:
        reservation_settlement_reopen(reservation_id=reservation.pk)
