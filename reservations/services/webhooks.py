"""Reservation events for partner webhooks, read from the ReservationEvent table
as an outbox: the booking path and the transitions write their event rows as they
always did (nothing added to them), and this reader, run by beat every
WEBHOOK_DISPATCH_SECONDS, turns new rows of lots with active endpoints into
deliveries (lots/webhooks/services.py sends them).

How far it has read is one WebhookStream row, locked for the whole run, so two
dispatchers never read the same rows at once; the (endpoint, event id) constraint
makes a second enqueue of an event impossible anyway. Ids are taken in order but
committed in any order (a booking that took id 41 may commit after one that took
42): an id below the last one read that is not there yet is a gap, re-read on
each run until it appears or WEBHOOK_GAP_SECONDS pass (then it was rolled back).

Event types, from the state the reservation moved to:

    pending_payment → reservation.created     (booked, held until paid)
    confirmed       → reservation.confirmed   (paid)
    cancelled       → reservation.cancelled   (data.reason: the driver's or staff's
    expired         → reservation.cancelled    cancel, "expired" for an unpaid hold)
    parked          → reservation.arrived
    completed       → reservation.left
    no_show         → reservation.no_show

Events that change no state (a move to another spot, a refund) are not sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.crypto import salted_hmac

from lots.webhooks.models import WebhookStream
from lots.webhooks.selectors import webhook_lot_ids
from lots.webhooks.services import WebhookEvent, deliveries_enqueue
from reservations.models import Reservation, ReservationEvent, Status

log = structlog.stdlib.get_logger("parkspot.webhooks")

STREAM = "reservation_events"
# Gaps remembered at most (the oldest are dropped first).
MAX_GAPS = 10_000

EVENT_TYPE_OF = {
    Status.PENDING_PAYMENT: "reservation.created",
    Status.CONFIRMED: "reservation.confirmed",
    Status.CANCELLED: "reservation.cancelled",
    Status.EXPIRED: "reservation.cancelled",
    Status.PARKED: "reservation.arrived",
    Status.COMPLETED: "reservation.left",
    Status.NO_SHOW: "reservation.no_show",
}


def event_public_id(event_pk: int) -> str:
    """The event's id for partners: stable (every endpoint and attempt gets the
    same, for deduplication), not a database key, not guessable."""
    digest = salted_hmac("parkspot.webhooks.event", str(event_pk), algorithm="sha256")
    return "evt_" + digest.hexdigest()[:24]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def event_payload(event: ReservationEvent, reservation: Reservation) -> dict:
    """What a partner is told: the reservation as the API shows it, minus who
    the driver is and their payment (no name, e-mail or card); the plate stays,
    as the lot's gate reads it."""
    data = {
        "reservation": {
            "id": reservation.code,
            "status": event.to_status,
            "lot_id": reservation.lot.slug,
            "spot": {"id": reservation.spot.public_id, "label": reservation.spot.label},
            "vehicle_type": reservation.vehicle_type,
            "vehicle_plate": reservation.vehicle_plate,
            "start": _iso(reservation.start),
            "end": _iso(reservation.end),
            "price": {"amount": reservation.price_amount, "currency": reservation.currency},
            "arrived_at": _iso(reservation.arrived_at),
            "departed_at": _iso(reservation.departed_at),
        },
        "previous_status": event.from_status or None,
    }
    reason = (event.data or {}).get("reason")
    if event.to_status == Status.EXPIRED:
        reason = "expired"
    if reason:
        data["reason"] = str(reason)
    return {
        "id": event_public_id(event.pk),
        "type": EVENT_TYPE_OF[event.to_status],
        "created": _iso(event.at),
        "data": data,
    }


def _stream() -> WebhookStream:
    WebhookStream.objects.get_or_create(name=STREAM)
    return WebhookStream.objects.select_for_update().get(name=STREAM)


def webhook_events_dispatch(*, limit: int | None = None) -> int:
    """Read the next reservation events (at most `limit`, WEBHOOK_DISPATCH_BATCH)
    and enqueue deliveries for those of lots with active endpoints, in one
    transaction with the cursor. Returns how many deliveries were new."""
    limit = limit or settings.WEBHOOK_DISPATCH_BATCH
    now = timezone.now()
    with transaction.atomic():
        stream = _stream()
        lot_ids = webhook_lot_ids()
        if not lot_ids:
            # Nobody listens: move on to the newest event without reading any.
            newest = ReservationEvent.objects.aggregate(top=Max("pk"))["top"] or 0
            if newest != stream.last_id or stream.gaps:
                stream.last_id, stream.gaps = max(newest, stream.last_id), {}
                stream.save(update_fields=["last_id", "gaps", "updated_at"])
            return 0
        gaps = {int(pk): seen for pk, seen in (stream.gaps or {}).items()}
        rows = list(
            ReservationEvent.objects.filter(pk__gt=stream.last_id)
            .order_by("pk")
            .values_list("pk", "reservation__lot_id")[:limit]
        )
        if gaps:
            rows += ReservationEvent.objects.filter(pk__in=list(gaps)).values_list(
                "pk", "reservation__lot_id"
            )
        seen = {pk for pk, _ in rows}
        # Ids skipped over in this read: remembered as gaps until they appear.
        top = max((pk for pk, _ in rows), default=stream.last_id)
        # (A first read starts at the first event there is, not at id 1.)
        first = stream.last_id + 1 if stream.last_id else min(seen, default=1)
        for pk in range(max(first, top - MAX_GAPS), top + 1):
            if pk not in seen:
                gaps[pk] = now.isoformat()
        for pk in seen:
            gaps.pop(pk, None)
        stream.last_id = max(top, stream.last_id)
        stream.gaps = _fresh_gaps(gaps, now=now)
        stream.save(update_fields=["last_id", "gaps", "updated_at"])

        wanted = sorted(pk for pk, lot_id in rows if lot_id in lot_ids)
        created = deliveries_enqueue(events=_events(wanted), now=now) if wanted else 0
    if created:
        log.info("webhook.dispatched", deliveries=created, up_to_event=stream.last_id)
    return created


def _fresh_gaps(gaps: dict[int, str], *, now: datetime) -> dict[str, str]:
    cutoff = now - timedelta(seconds=settings.WEBHOOK_GAP_SECONDS)
    kept = sorted((pk, seen) for pk, seen in gaps.items() if datetime.fromisoformat(seen) > cutoff)
    return {str(pk): seen for pk, seen in kept[-MAX_GAPS:]}


def _events(event_pks: list[int]) -> list[WebhookEvent]:
    events = [
        event
        for event in ReservationEvent.objects.filter(pk__in=event_pks).order_by("pk")
        if event.to_status != event.from_status and event.to_status in EVENT_TYPE_OF
    ]
    reservations = Reservation.objects.select_related("lot", "spot").in_bulk(
        {event.reservation_id for event in events}
    )
    out = []
    for event in events:
        reservation = reservations[event.reservation_id]
        payload = event_payload(event, reservation)
        out.append(
            WebhookEvent(
                lot_id=reservation.lot_id,
                event_id=payload["id"],
                event_type=payload["type"],
                payload=payload,
            )
        )
    return out
