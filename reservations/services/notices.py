"""E-mails a reservation gets once: its receipt when it is settled, a reminder
before its start. Each is claimed by a ReservationNotice row (unique per
reservation and kind) before it is queued, so that a sweep run twice, or two at
once, queue it once; the e-mail itself goes out from the worker (retried there
if the mail server fails), never inside a transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from reservations import notifications
from reservations.models import Reservation, ReservationNotice, Status


def notice_claim(*, reservation_id: int, kind: str, now: datetime | None = None) -> bool:
    """Claim a once-only e-mail; False when it was claimed already."""
    try:
        with transaction.atomic():
            ReservationNotice.objects.create(
                reservation_id=reservation_id, kind=kind, created_at=now or timezone.now()
            )
    except IntegrityError:
        return False
    return True


def reservation_receipt_queue(*, reservation_id: int, now: datetime | None = None) -> bool:
    """Queue the receipt of a reservation just settled, once ever."""
    if not notice_claim(
        reservation_id=reservation_id, kind=ReservationNotice.Kind.RECEIPT, now=now
    ):
        return False
    notifications.receipt_queue(reservation_id=reservation_id)
    return True


def reminders_queue(*, now: datetime | None = None, limit: int = 200) -> int:
    """Remind drivers whose confirmed booking starts within REMINDER_LEAD_MINUTES
    (scheduler). A booking made within that lead just got its pass: no reminder.
    One bounded query, then one claim per reminder."""
    now = now or timezone.now()
    lead = timedelta(minutes=settings.REMINDER_LEAD_MINUTES)
    reminded = ReservationNotice.objects.filter(
        reservation=OuterRef("pk"), kind=ReservationNotice.Kind.REMINDER
    )
    due = list(
        Reservation.objects.filter(
            status=Status.CONFIRMED,
            start__gt=now,
            start__lte=now + lead,
            created_at__lt=F("start") - lead,
        )
        .exclude(Exists(reminded))
        .order_by("start")
        .values_list("pk", flat=True)[:limit]
    )
    queued = 0
    for reservation_id in due:
        if notice_claim(
            reservation_id=reservation_id, kind=ReservationNotice.Kind.REMINDER, now=now
        ):
            notifications.reminder_queue(reservation_id=reservation_id)
            queued += 1
    return queued
