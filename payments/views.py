"""Stripe webhooks."""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.api import error_body
from payments import gateway
from payments.services import payment_sync, stripe_event_mark_processed, stripe_event_record

log = logging.getLogger(__name__)

# Events whose object leads to a PaymentIntent we may hold.
HANDLED = {
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.amount_capturable_updated",
    "charge.refunded",
    "charge.captured",
}


def _intent_id(event_type: str, obj: dict) -> str | None:
    if event_type.startswith("payment_intent."):
        return obj.get("id")
    intent = obj.get("payment_intent")
    return intent.get("id") if isinstance(intent, dict) else intent


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    try:
        payload = request.body
    except RequestDataTooBig:
        return JsonResponse(
            error_body("request_too_large", "The body is larger than we accept."), status=413
        )
    try:
        event = gateway.webhook_event(
            payload=payload, signature=request.headers.get("Stripe-Signature", "")
        )
    except gateway.WebhookRefused as exc:
        return JsonResponse(error_body(exc.code, exc.detail), status=400)

    intent_id = _intent_id(event.type, event.object) if event.type in HANDLED else None
    fresh = stripe_event_record(
        event_id=event.id,
        type=event.type,
        object_id=intent_id or event.object.get("id", ""),
        payload=event.payload,
    )
    if not fresh:
        return JsonResponse({"received": True, "duplicate": True})
    if intent_id:
        try:
            payment_sync(payment_intent_id=intent_id)
        except gateway.GatewayError as exc:
            if exc.code == "resource_missing":
                # Stripe has no such intent (its test data deleted since, say):
                # asking again would never find one. Acknowledged.
                log.warning("Event %s names %s, which Stripe does not know", event.id, intent_id)
                stripe_event_mark_processed(event_id=event.id)
                return JsonResponse({"received": True, "ignored": "unknown_payment_intent"})
            # Stripe retries webhooks that fail: ask again later.
            log.warning("Could not re-read %s for event %s", intent_id, event.id)
            return JsonResponse(error_body("retry", "Stripe could not be reached."), status=503)
    stripe_event_mark_processed(event_id=event.id)
    return JsonResponse({"received": True})
