"""E-mails about reservations: the pass, sent once a reservation is confirmed; a
new spot when a reservation had to move; a cancellation we had to make; the
driver's own cancellation, an extension, a refund; the receipt once settled;
a reminder before the start."""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable
from email.mime.image import MIMEImage

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from config.errors import NotFound
from config.qr import qr_code
from payments.models import Payment
from payments.selectors import payment_for
from reservations.models import Reservation, ReservationExtension, Status, payment_reference
from reservations.selectors import reservation_receipt, reservation_terms

# The QR code travels as an inline image, referred to from the HTML by Content-ID.
QR_CONTENT_ID = "pass-qr"

# States in which the pass gets a driver through the gate.
PASS_STATUSES = (Status.CONFIRMED, Status.PARKED)


def _one_line(subject: str) -> str:
    """A subject on one line; French's no-break spaces (before ":", in "12,50 €") kept."""
    return re.sub(r"[ \t\r\n]+", " ", subject).strip()


def in_drivers_language(send: Callable[..., None]) -> Callable[..., None]:
    """Write the e-mail in the driver's language (User.language): the worker has
    no request to take it from."""

    @functools.wraps(send)
    def send_in_language(*, reservation_id: int, **kwargs: object) -> None:
        language = (
            Reservation.objects.filter(pk=reservation_id)
            .values_list("user__language", flat=True)
            .first()
        )
        with translation.override(language or settings.LANGUAGE_CODE):
            send(reservation_id=reservation_id, **kwargs)

    return send_in_language


def _qr_png(code: str) -> bytes:
    out = io.BytesIO()
    qr_code(code).save(out, kind="png", scale=8, border=4, dark="#0b1f33", light="#ffffff")
    return out.getvalue()


def _reservation(reservation_id: int) -> Reservation:
    reservation = (
        Reservation.objects.select_related("user", "lot", "spot").filter(pk=reservation_id).first()
    )
    if reservation is None:
        raise NotFound("There is no such reservation.", code="reservation_not_found")
    return reservation


def _context(reservation: Reservation, **extra: object) -> dict:
    site = settings.SITE_URL.rstrip("/")
    return {
        "reservation": reservation,
        "lot": reservation.lot,
        "user": reservation.user,
        "terms": reservation_terms(reservation),
        "pass_url": site + reverse("reservation_detail", args=[reservation.code]),
        "reservations_url": site + reverse("reservation_list"),
        "receipt_url": site + reverse("reservation_receipt", args=[reservation.code]),
        "site_url": site,
        **extra,
    }


def _send_text(reservation: Reservation, template: str, context: dict) -> None:
    subject = render_to_string(f"reservations/email/{template}_subject.txt", context).strip()
    EmailMultiAlternatives(
        subject=_one_line(subject),
        body=render_to_string(f"reservations/email/{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[reservation.user.email],
    ).send()


@in_drivers_language
def send_reservation_moved(*, reservation_id: int, moved_from: str, reason: str) -> None:
    """Tell the driver their reservation now has another spot, and why."""
    reservation = _reservation(reservation_id)
    if reservation.status not in (Status.PENDING_PAYMENT, *PASS_STATUSES):
        return
    context = _context(
        reservation,
        moved_from=moved_from,
        reason=reason,
        closure_reason=_closure_reason(reservation),
    )
    _send_text(reservation, "moved", context)


@in_drivers_language
def send_reservation_displaced(*, reservation_id: int, reason: str) -> None:
    """Tell the driver we had to cancel their reservation, and that they owe nothing."""
    reservation = _reservation(reservation_id)
    if reservation.status != Status.CANCELLED:
        return
    context = _context(reservation, reason=reason, closure_reason=_closure_reason(reservation))
    _send_text(reservation, "displaced", context)


def _closure_reason(reservation: Reservation) -> str:
    """Why the lot's staff closed the reservation's spot, if a closure moved or
    cancelled it (the latest one)."""
    impact = reservation.closure_impacts.select_related("closure").order_by("-pk").first()
    return impact.closure.reason if impact is not None else ""


@in_drivers_language
def send_reservation_extended(*, reservation_id: int, extension_id: int) -> None:
    """Confirm an extension: the new end, in the lot's time zone, and its price."""
    reservation = _reservation(reservation_id)
    extension = ReservationExtension.objects.filter(
        pk=extension_id, reservation=reservation, state=ReservationExtension.State.APPLIED
    ).first()
    if extension is None:
        return
    _send_text(reservation, "extended", _context(reservation, extension=extension))


@in_drivers_language
def send_reservation_pass(*, reservation_id: int) -> None:
    """E-mail the driver the pass of a confirmed reservation: its code as text and
    as a QR code, the lot, the spot, the times in the lot's time zone and the price.

    Idempotent in effect (sending twice sends the same pass twice); a reservation
    that is no longer usable (cancelled, expired...) gets no pass.
    """
    reservation = _reservation(reservation_id)
    if reservation.status not in PASS_STATUSES:
        return
    context = _context(reservation, qr_cid=QR_CONTENT_ID)
    subject = render_to_string("reservations/email/pass_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=_one_line(subject),
        body=render_to_string("reservations/email/pass.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[reservation.user.email],
    )
    message.attach_alternative(
        render_to_string("reservations/email/pass.html", context), "text/html"
    )
    # multipart/related: the HTML and the image it shows belong together.
    message.mixed_subtype = "related"
    image = MIMEImage(_qr_png(reservation.code), _subtype="png")
    image.add_header("Content-ID", f"<{QR_CONTENT_ID}>")
    image.add_header(
        "Content-Disposition", "inline", filename=f"parkspot-pass-{reservation.code}.png"
    )
    message.attach(image)
    message.send()


@in_drivers_language
def send_reservation_cancelled(*, reservation_id: int) -> None:
    """The driver's cancellation: what it cost, and what of the price is given
    back (a hold released, or a charge made when booking refunded)."""
    reservation = _reservation(reservation_id)
    if reservation.status != Status.CANCELLED:
        return
    booking = payment_for(reference=payment_reference(reservation))
    paid = booking is not None and booking.status in (
        Payment.Status.AUTHORISED,
        Payment.Status.CAPTURED,
    )
    charge = reservation.amount_due or 0
    context = _context(
        reservation,
        paid=paid,
        charge=charge,
        given_back=max(reservation.price_amount - charge, 0) if paid else 0,
        charged_when_booked=paid and booking.capture_mode == Payment.CaptureMode.IMMEDIATE,
    )
    _send_text(reservation, "cancelled", context)


@in_drivers_language
def send_reservation_refunded(*, reservation_id: int, amount: int) -> None:
    """Money given back by the lot's staff."""
    reservation = _reservation(reservation_id)
    _send_text(reservation, "refunded", _context(reservation, amount=amount))


@in_drivers_language
def send_reservation_receipt(*, reservation_id: int) -> None:
    """The receipt of a settled reservation: each charge and refund, as the
    payments recorded them. None for one that moved no money (a free
    cancellation, a lapsed hold: their own e-mail said so)."""
    reservation = _reservation(reservation_id)
    receipt = reservation_receipt(reservation)
    if receipt is None or not receipt.lines:
        return
    context = _context(reservation, receipt=receipt)
    subject = render_to_string("reservations/email/receipt_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=_one_line(subject),
        body=render_to_string("reservations/email/receipt.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[reservation.user.email],
    )
    message.attach_alternative(
        render_to_string("reservations/email/receipt.html", context), "text/html"
    )
    message.send()


@in_drivers_language
def send_reservation_reminder(*, reservation_id: int) -> None:
    """A reminder before the start, with the pass's code and where to go; none
    for a booking cancelled or started meanwhile."""
    reservation = _reservation(reservation_id)
    if reservation.status != Status.CONFIRMED:
        return
    _send_text(reservation, "reminder", _context(reservation))
