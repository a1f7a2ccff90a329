"""E-mails about reservations: the pass, sent once a reservation is confirmed."""

from __future__ import annotations

import io
from email.mime.image import MIMEImage

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from config.errors import NotFound
from parking.templatetags.parkspot import qr_code
from reservations.models import Reservation, Status

# The QR code travels as an inline image, referred to from the HTML by Content-ID.
QR_CONTENT_ID = "pass-qr"

# States in which the pass gets a driver through the gate.
PASS_STATUSES = (Status.CONFIRMED, Status.PARKED)


def _qr_png(code: str) -> bytes:
    out = io.BytesIO()
    qr_code(code).save(out, kind="png", scale=8, border=4, dark="#0b1f33", light="#ffffff")
    return out.getvalue()


def send_reservation_pass(*, reservation_id: int) -> None:
    """E-mail the driver the pass of a confirmed reservation: its code as text and
    as a QR code, the lot, the spot, the times in the lot's time zone and the price.

    Idempotent in effect (sending twice sends the same pass twice); a reservation
    that is no longer usable (cancelled, expired...) gets no pass.
    """
    reservation = (
        Reservation.objects.select_related("user", "lot", "spot").filter(pk=reservation_id).first()
    )
    if reservation is None:
        raise NotFound("There is no such reservation.", code="reservation_not_found")
    if reservation.status not in PASS_STATUSES:
        return

    site = settings.SITE_URL.rstrip("/")
    context = {
        "reservation": reservation,
        "lot": reservation.lot,
        "user": reservation.user,
        "pass_url": site + reverse("reservation_detail", args=[reservation.code]),
        "reservations_url": site + reverse("reservation_list"),
        "site_url": site,
        "qr_cid": QR_CONTENT_ID,
    }
    subject = render_to_string("reservations/email/pass_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
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
