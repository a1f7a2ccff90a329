"""Every write about partner webhooks: endpoints, enqueueing events, sending
them with backoff, and retrying by hand."""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from config.errors import Conflict, InvalidInput, NotFound
from lots.models import Lot
from lots.webhooks import sending
from lots.webhooks.addresses import address_allowed, is_loopback_host
from lots.webhooks.models import EVENT_TYPES, TEST_EVENT_TYPE, WebhookDelivery, WebhookEndpoint
from lots.webhooks.selectors import webhook_endpoints_for

log = structlog.stdlib.get_logger("parkspot.webhooks")

# Deliveries sent per run of the sending task; each may take the timeout.
SEND_BATCH = 20


# --- endpoints ------------------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def webhook_url_check(url: str) -> str:
    """The URL as stored, or InvalidInput: HTTPS, or plain HTTP to a loopback
    address where WEBHOOK_ALLOW_LOOPBACK_HTTP allows it (tests, development)."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise InvalidInput("That is not a URL.", code="invalid_url", field="url") from None
    if not host or parts.username or parts.password:
        raise InvalidInput(
            "Give the full address, e.g. https://partner.example/hooks, without a password.",
            code="invalid_url",
            field="url",
        )
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None and not address_allowed(str(literal)):
        raise InvalidInput(
            "Webhooks are sent to public addresses only.",
            code="webhook_url_not_public",
            field="url",
        )
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and settings.WEBHOOK_ALLOW_LOOPBACK_HTTP and is_loopback_host(host):
        return url
    raise InvalidInput(
        "Webhook endpoints must use HTTPS.", code="webhook_url_not_https", field="url"
    )


def _event_types_check(event_types: list[str]) -> list[str]:
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(
            f"Unknown event types: {', '.join(unknown)}.", code="invalid", field="event_types"
        )
    return [name for name in EVENT_TYPES if name in set(event_types)]  # in a stable order


def webhook_endpoint_create(
    *,
    lot: Lot,
    url: str,
    event_types: list[str],
    description: str = "",
    is_active: bool = True,
) -> WebhookEndpoint:
    """Register a lot's endpoint with a new signing secret."""
    url = webhook_url_check(url)
    event_types = _event_types_check(event_types)
    try:
        with transaction.atomic():
            return WebhookEndpoint.objects.create(
                lot=lot,
                url=url,
                description=description.strip(),
                secret=new_secret(),
                event_types=event_types,
                is_active=is_active,
            )
    except IntegrityError as exc:
        raise Conflict(
            "This lot already has an endpoint at that address.",
            code="webhook_endpoint_exists",
            field="url",
        ) from exc


def webhook_endpoint_update(
    *,
    endpoint_id: int,
    url: str,
    event_types: list[str],
    description: str = "",
    is_active: bool = True,
) -> WebhookEndpoint:
    url = webhook_url_check(url)
    event_types = _event_types_check(event_types)
    try:
        with transaction.atomic():
            endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
            endpoint.url = url
            endpoint.event_types = event_types
            endpoint.description = description.strip()
            endpoint.is_active = is_active
            endpoint.save()
            return endpoint
    except WebhookEndpoint.DoesNotExist:
        raise NotFound("There is no such endpoint.", code="webhook_endpoint_not_found") from None
    except IntegrityError as exc:
        raise Conflict(
            "This lot already has an endpoint at that address.",
            code="webhook_endpoint_exists",
            field="url",
        ) from exc


@transaction.atomic
def webhook_endpoint_rotate_secret(*, endpoint_id: int) -> WebhookEndpoint:
    """A new signing secret; deliveries from now on are signed with it."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
    endpoint.secret = new_secret()
    endpoint.save(update_fields=["secret", "updated_at"])
    return endpoint


# --- enqueueing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookEvent:
    """An event for a lot's endpoints, as a source (an outbox reader) hands it over."""

    lot_id: int
    event_id: str
    event_type: str
    payload: dict


def deliveries_enqueue(*, events: list[WebhookEvent], now: datetime | None = None) -> int:
    """A pending delivery for each event and each of its lot's active endpoints
    that subscribes to its type; an event already enqueued for an endpoint is
    skipped (the (endpoint, event id) constraint). Runs in the caller's
    transaction (the outbox reader's, with its cursor). Returns how many were new."""
    if not events:
        return 0
    now = now or timezone.now()
    endpoints: dict[int, list[WebhookEndpoint]] = {}
    for endpoint in webhook_endpoints_for(event.lot_id for event in events):
        endpoints.setdefault(endpoint.lot_id, []).append(endpoint)
    rows = [
        WebhookDelivery(
            endpoint=endpoint,
            event_id=event.event_id,
            event_type=event.event_type,
            payload=event.payload,
            next_attempt_at=now,
        )
        for event in events
        for endpoint in endpoints.get(event.lot_id, ())
        if endpoint.wants(event.event_type)
    ]
    if not rows:
        return 0
    keys = {(row.endpoint_id, row.event_id) for row in rows}
    before = _existing(keys)
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(keys) - before


def _existing(keys: set[tuple[int, str]]) -> int:
    endpoint_ids = {endpoint_id for endpoint_id, _ in keys}
    event_ids = {event_id for _, event_id in keys}
    found = WebhookDelivery.objects.filter(endpoint_id__in=endpoint_ids, event_id__in=event_ids)
    return sum(1 for key in found.values_list("endpoint_id", "event_id") if key in keys)


def webhook_test_send(*, endpoint_id: int) -> WebhookDelivery:
    """Enqueue a `webhook.test` event for one endpoint (staff check their receiver)."""
    endpoint = WebhookEndpoint.objects.select_related("lot").get(pk=endpoint_id)
    now = timezone.now()
    event_id = "evt_test_" + uuid.uuid4().hex[:20]
    payload = {
        "id": event_id,
        "type": TEST_EVENT_TYPE,
        "created": now.isoformat(),
        "data": {"lot_id": endpoint.lot.slug, "message": "A test event sent by lot staff."},
    }
    with transaction.atomic():
        return WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_id=event_id,
            event_type=TEST_EVENT_TYPE,
            payload=payload,
            next_attempt_at=now,
        )


# --- sending --------------------------------------------------------------------------------


def retry_delay(attempts: int) -> timedelta:
    """How long after its `attempts`-th failure a delivery is tried again:
    WEBHOOK_RETRY_BASE_SECONDS, ×4 each time, at most 12 hours (with the
    defaults, 30 s, 2 min, 8 min, 32 min, 2 h 8 min, 8 h 32 min, 12 h: the 8th
    and last attempt about 23 hours after the first)."""
    seconds = settings.WEBHOOK_RETRY_BASE_SECONDS * 4 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, 12 * 3600))


def _claim(*, now: datetime, limit: int) -> list[tuple[int, int]]:
    """Due deliveries, each claimed for one attempt: (id, attempt number). A claim
    lapses after the time the batch may take; another worker then sends again."""
    lease = timedelta(seconds=limit * settings.WEBHOOK_TIMEOUT_SECONDS + 60)
    with transaction.atomic():
        due = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookDelivery.State.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .values_list("pk", flat=True)[:limit]
        )
        if not due:
            return []
        WebhookDelivery.objects.filter(pk__in=due).update(
            attempts=F("attempts") + 1, next_attempt_at=now + lease, last_attempt_at=now
        )
        return list(
            WebhookDelivery.objects.filter(pk__in=due)
            .order_by("next_attempt_at", "id")
            .values_list("pk", "attempts")
        )


def deliveries_send_due(*, limit: int = SEND_BATCH) -> int:
    """Send the deliveries that are due, each once: claim (one transaction), POST
    (none), finish (compare-and-set on the attempt number, so a claim that
    lapsed and was taken over is not finished twice). Returns how many were sent."""
    now = timezone.now()
    claimed = _claim(now=now, limit=limit)
    deliveries = WebhookDelivery.objects.select_related("endpoint").in_bulk(
        [pk for pk, _ in claimed]
    )
    for pk, attempt in claimed:
        delivery = deliveries.get(pk)
        if delivery is None:  # its endpoint was deleted meanwhile, and its log with it
            continue
        endpoint = delivery.endpoint
        if not endpoint.is_active:
            result = sending.SendResult(ok=False, status_code=None, error="The endpoint is off.")
            _finish(delivery, attempt=attempt, result=result, give_up=True)
            continue
        result = sending.post(
            url=endpoint.url,
            secret=endpoint.secret,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            payload=delivery.payload,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
        )
        _finish(delivery, attempt=attempt, result=result)
    return len(claimed)


def _finish(
    delivery: WebhookDelivery, *, attempt: int, result: sending.SendResult, give_up: bool = False
) -> None:
    now = timezone.now()
    fields = {"last_response_code": result.status_code, "last_error": result.error}
    if result.ok:
        fields.update(
            status=WebhookDelivery.State.DELIVERED, delivered_at=now, next_attempt_at=None
        )
    elif give_up or attempt >= settings.WEBHOOK_MAX_ATTEMPTS:
        fields.update(status=WebhookDelivery.State.FAILED, next_attempt_at=None)
    else:
        fields.update(next_attempt_at=now + retry_delay(attempt))
    with transaction.atomic():
        finished = WebhookDelivery.objects.filter(
            pk=delivery.pk, status=WebhookDelivery.State.PENDING, attempts=attempt
        ).update(**fields)
    log.info(
        "webhook.delivered" if result.ok else "webhook.attempt_failed",
        delivery_id=delivery.pk,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        endpoint_id=delivery.endpoint_id,
        attempt=attempt,
        status_code=result.status_code,
        error=result.error or None,
        outcome=fields.get("status", "retry"),
        recorded=bool(finished),
    )


def deliveries_prune(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Forget the log of deliveries finished more than WEBHOOK_LOG_DAYS ago (sent or
    given up); pending ones are kept whatever their age. Endpoint by endpoint, in
    batches, through the log's (endpoint, created_at) index: no other index is
    written on every delivery just to be pruned. Returns how many were deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.WEBHOOK_LOG_DAYS)
    deleted = 0
    for endpoint_id in WebhookEndpoint.objects.order_by("pk").values_list("pk", flat=True):
        while True:
            with transaction.atomic():
                old = list(
                    WebhookDelivery.objects.filter(endpoint_id=endpoint_id, created_at__lt=cutoff)
                    .exclude(status=WebhookDelivery.State.PENDING)
                    .order_by("created_at")
                    .values_list("pk", flat=True)[:batch]
                )
                if old:
                    WebhookDelivery.objects.filter(pk__in=old).delete()
            deleted += len(old)
            if len(old) < batch:
                break
    if deleted:
        log.info("webhook.log_pruned", deleted=deleted, before=cutoff.isoformat())
    return deleted


@transaction.atomic
def delivery_retry(*, delivery_id: int) -> bool:
    """Send a delivery again at once (staff, from the log): a failed one gets one
    more attempt; a pending one stops waiting. False if it was delivered already."""
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
    if delivery.status == WebhookDelivery.State.DELIVERED:
        return False
    delivery.status = WebhookDelivery.State.PENDING
    delivery.next_attempt_at = timezone.now()
    delivery.save(update_fields=["status", "next_attempt_at"])
    return True
