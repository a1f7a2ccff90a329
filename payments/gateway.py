"""The only module that talks to Stripe.

It sends only parameters that both Stripe and localstripe (our stand-in for
development and tests) accept, puts an idempotency key on every write, and
turns the SDK's errors into three kinds: declined (the card said no), unknown
outcome (the network failed: retry with the same key), and refused (a bug or a
state Stripe will not accept).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import stripe
from django.conf import settings
from django.db import connection

from config.api import parse_json_object
from config.errors import InvalidInput
from payments import metrics

log = logging.getLogger(__name__)


class GatewayError(Exception):
    def __init__(self, message: str, *, code: str = "stripe_error"):
        super().__init__(message)
        self.message = message
        self.code = code


class CardDeclined(GatewayError):
    """The card was refused; another card may work. A declined confirmation
    leaves its PaymentIntent open at Stripe: `intent_id`, when known."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "card_declined",
        intent_id: str | None = None,
        charge_id: str | None = None,
    ):
        super().__init__(message, code=code)
        self.intent_id = intent_id
        self.charge_id = charge_id


class OutcomeUnknown(GatewayError):
    """We cannot tell whether Stripe acted: retry with the same idempotency key."""


class CallInsideTransaction(RuntimeError):
    """A Stripe call was made while a database transaction was open."""


@dataclass(frozen=True)
class IntentState:
    id: str
    status: str  # Stripe's: requires_capture, succeeded, canceled, requires_payment_method…
    amount: int
    currency: str
    captured: int
    # Money that stayed with us: captured minus refunded (Stripe counts the
    # released remainder of a partial capture as refunded too).
    net_received: int
    metadata: dict


def _client() -> stripe.StripeClient:
    base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses=base,
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
    )


def _call(description: str, fn, *args, **kwargs) -> Any:
    if not settings.STRIPE_SECRET_KEY:
        raise GatewayError(
            "Payments are not configured (STRIPE_SECRET_KEY).", code="not_configured"
        )
    # A network call inside a transaction holds row locks for as long as Stripe
    # takes, and can commit a record of something Stripe never did (or the
    # reverse): never allowed, with no way to opt out.
    if connection.in_atomic_block:
        raise CallInsideTransaction(f"Stripe call {description!r} inside a database transaction")
    started = perf_counter()
    result = "error"
    try:
        answer = fn(*args, **kwargs)
        result = "ok"
        return answer
    except stripe.CardError as exc:
        result = "declined"
        # Stripe names the intent the decline left open; localstripe only the charge.
        intent = getattr(exc.error, "payment_intent", None)
        raise CardDeclined(
            exc.user_message or str(exc),
            code=exc.code or "card_declined",
            intent_id=intent if isinstance(intent, str) or intent is None else intent.id,
            charge_id=getattr(exc.error, "charge", None),
        ) from exc
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        result = "unknown"
        raise OutcomeUnknown(str(exc), code="stripe_unreachable") from exc
    except stripe.APIError as exc:  # Stripe's own 5xx
        result = "unknown"
        raise OutcomeUnknown(str(exc), code="stripe_unavailable") from exc
    except stripe.StripeError as exc:
        result = "refused"
        log.warning("Stripe refused %s: %s", description, exc)
        code = exc.code or ("resource_missing" if exc.http_status == 404 else "stripe_error")
        raise GatewayError(exc.user_message or str(exc), code=code) from exc
    finally:
        metrics.stripe_called(call=description, result=result, seconds=perf_counter() - started)


def _opts(idempotency_key: str) -> dict:
    return {"idempotency_key": idempotency_key}


def _charge_amounts(intent: dict) -> tuple[int, int]:
    """(captured, kept) of the intent's charge; kept = captured minus refunds."""
    charge = intent.get("latest_charge")
    if charge is None:
        return 0, 0
    if isinstance(charge, str):  # Stripe sends the id unless expanded
        charge = _call("retrieve charge", _client().v1.charges.retrieve, charge).to_dict()
    if not charge.get("captured"):
        return 0, 0
    amount = int(charge["amount"])
    # localstripe has no amount_captured and reports a partial capture as a
    # full one with the rest refunded; both ways, what was kept is the same.
    captured = int(charge.get("amount_captured") or amount)
    return captured, amount - int(charge.get("amount_refunded") or 0)


def _state(stripe_intent: Any) -> IntentState:
    intent = stripe_intent.to_dict()
    captured, kept = _charge_amounts(intent)
    return IntentState(
        id=intent["id"],
        status=intent["status"],
        amount=int(intent["amount"]),
        currency=intent["currency"],
        captured=captured,
        net_received=kept,
        metadata=dict(intent.get("metadata") or {}),
    )


def customer_create(*, email: str, idempotency_key: str) -> str:
    customer = _call(
        "create customer",
        _client().v1.customers.create,
        params={"email": email},
        options=_opts(idempotency_key),
    )
    return customer["id"]


def setup_intent_create(*, customer_id: str, idempotency_key: str) -> tuple[str, str]:
    """A SetupIntent to collect and save a card for later off-session use."""
    intent = _call(
        "create setup intent",
        _client().v1.setup_intents.create,
        params={"customer": customer_id, "usage": "off_session", "payment_method_types": ["card"]},
        options=_opts(idempotency_key),
    )
    return intent["id"], intent["client_secret"]


def payment_method_attach(
    *, payment_method_id: str, customer_id: str, idempotency_key: str
) -> bool:
    """Save the card on the customer (needed to charge it later off-session).
    True when this call saved it; False when it was saved there already."""
    method = _call(
        "retrieve payment method", _client().v1.payment_methods.retrieve, payment_method_id
    )
    if method["customer"] == customer_id:
        return False
    if method["customer"]:
        raise GatewayError("This card belongs to someone else.", code="payment_method_not_yours")
    _call(
        "attach payment method",
        _client().v1.payment_methods.attach,
        payment_method_id,
        params={"customer": customer_id},
        options=_opts(idempotency_key),
    )
    return True


@dataclass(frozen=True)
class SavedCard:
    """A card saved on a Customer, as a driver recognises it."""

    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


def _saved_card(method: dict) -> SavedCard:
    card = method.get("card") or {}
    return SavedCard(
        id=method["id"],
        brand=str(card.get("brand") or "card"),
        last4=str(card.get("last4") or ""),
        exp_month=int(card.get("exp_month") or 0),
        exp_year=int(card.get("exp_year") or 0),
    )


def payment_methods_list(*, customer_id: str, limit: int = 20) -> list[SavedCard]:
    """The cards saved on a Customer (Stripe's newest first)."""
    methods = _call(
        "list payment methods",
        _client().v1.payment_methods.list,
        params={"customer": customer_id, "type": "card", "limit": limit},
    )
    return [_saved_card(method.to_dict()) for method in methods.data]


def payment_method_customer(*, payment_method_id: str) -> str | None:
    """The Customer a card is saved on (None: on none)."""
    method = _call(
        "retrieve payment method", _client().v1.payment_methods.retrieve, payment_method_id
    )
    return method["customer"] or None


def payment_method_detach(*, payment_method_id: str, idempotency_key: str) -> None:
    """Remove a card from its Customer: it can no longer be charged."""
    _call(
        "detach payment method",
        _client().v1.payment_methods.detach,
        payment_method_id,
        options=_opts(idempotency_key),
    )


def payment_intent_create(
    *,
    amount: int,
    currency: str,
    customer_id: str,
    payment_method_id: str,
    capture_later: bool,
    off_session: bool,
    metadata: dict[str, str],
    idempotency_key: str,
) -> IntentState:
    """Create and confirm a card payment: a hold when capture_later, else a charge."""
    params: dict[str, Any] = {
        "amount": amount,
        "currency": currency,
        "customer": customer_id,
        "payment_method": payment_method_id,
        "payment_method_types": ["card"],
        "capture_method": "manual" if capture_later else "automatic",
        "confirm": True,
        "metadata": metadata,
    }
    if off_session:
        params["off_session"] = True
    try:
        intent = _call(
            "create payment intent",
            _client().v1.payment_intents.create,
            params=params,
            options=_opts(idempotency_key),
        )
    except CardDeclined as exc:
        if exc.intent_id is None and exc.charge_id:
            exc.intent_id = _charge_intent_id(exc.charge_id)
        raise
    return _state(intent)


def _charge_intent_id(charge_id: str) -> str | None:
    try:
        charge = _call("retrieve charge", _client().v1.charges.retrieve, charge_id)
    except GatewayError as exc:
        log.warning("Could not find the intent of declined charge %s: %s", charge_id, exc)
        return None
    return charge.to_dict().get("payment_intent")


def _expect(state: IntentState, status: str, doing: str) -> IntentState:
    # Stripe refuses to capture or cancel an intent in the wrong state;
    # localstripe may answer with the intent unchanged (it "captures" a
    # cancelled one): both are the same refusal here.
    if state.status != status:
        raise GatewayError(
            f"Stripe did not {doing} the payment: it is {state.status}.",
            code="payment_intent_unexpected_state",
        )
    return state


# seed_demo's payments (reservations/services/demo.py) were never at Stripe: their
# intents are named so, and settling them is bookkeeping only, or a demo's coming
# week would end on the staff's "needs attention" page. Never with a live key.
DEMO_INTENT_PREFIX = "pi_demo_"


def _is_demo(intent_id: str) -> bool:
    return intent_id.startswith(DEMO_INTENT_PREFIX) and not settings.STRIPE_SECRET_KEY.startswith(
        ("sk_live_", "rk_live_")
    )


def _demo_state(intent_id: str, status: str, captured: int = 0) -> IntentState:
    return IntentState(
        id=intent_id,
        status=status,
        amount=captured,
        currency="",
        captured=captured,
        net_received=captured,
        metadata={},
    )


def payment_intent_capture(*, intent_id: str, amount: int, idempotency_key: str) -> IntentState:
    """Take `amount` of a hold; Stripe releases the rest."""
    if _is_demo(intent_id):
        return _demo_state(intent_id, "succeeded", captured=amount)
    intent = _call(
        "capture payment intent",
        _client().v1.payment_intents.capture,
        intent_id,
        params={"amount_to_capture": amount},
        options=_opts(idempotency_key),
    )
    return _expect(_state(intent), "succeeded", "capture")


def payment_intent_cancel(*, intent_id: str, idempotency_key: str) -> IntentState:
    if _is_demo(intent_id):
        return _demo_state(intent_id, "canceled")
    intent = _call(
        "cancel payment intent",
        _client().v1.payment_intents.cancel,
        intent_id,
        options=_opts(idempotency_key),
    )
    return _expect(_state(intent), "canceled", "cancel")


def refund_create(*, intent_id: str, amount: int, idempotency_key: str) -> str:
    if _is_demo(intent_id):
        return "re_demo_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]
    refund = _call(
        "create refund",
        _client().v1.refunds.create,
        params={"payment_intent": intent_id, "amount": amount},
        options=_opts(idempotency_key),
    )
    return refund["id"]


def payment_intent_retrieve(*, intent_id: str) -> IntentState:
    return _state(
        _call("retrieve payment intent", _client().v1.payment_intents.retrieve, intent_id)
    )


class WebhookRefused(Exception):
    """A webhook we do not take: not signed by Stripe (code bad_signature), or
    signed but no event we can store (the body's code, e.g. malformed_event)."""

    def __init__(self, detail: str, *, code: str):
        super().__init__(detail)
        self.detail = detail
        self.code = code


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    object: dict[str, Any]  # data.object: what the event is about
    payload: dict[str, Any]  # the whole event, as stored


# Stripe's ids ("evt_1NG8Du2e…") and types ("payment_intent.succeeded"), within
# the lengths of StripeEvent's columns.
_EVENT_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
_EVENT_TYPE = re.compile(r"[a-z0-9_.]{1,100}")
_MAX_OBJECT_ID = 255


def webhook_event(*, payload: bytes, signature: str) -> WebhookEvent:
    """A webhook's event, once it is known to be Stripe's, recent and an event."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    tolerance = settings.STRIPE_WEBHOOK_TOLERANCE
    try:
        # Stripe signs UTF-8 text; hmac refuses to compare non-ASCII signatures.
        text = payload.decode("utf-8")
        if not signature.isascii():
            raise ValueError("non-ASCII signature")
        stripe.WebhookSignature.verify_header(text, signature, secret, tolerance)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise WebhookRefused("Not signed by Stripe.", code="bad_signature") from exc
    # The SDK refuses a signature older than the tolerance but not one dated
    # ahead: that one could be replayed until long after it was captured.
    if _signed_at(signature) > time.time() + tolerance:
        raise WebhookRefused(
            f"Signed more than {tolerance} s in the future; check the clocks.",
            code="bad_signature",
        )
    try:
        event = parse_json_object(payload)
    except InvalidInput as exc:
        raise WebhookRefused(exc.detail, code=exc.code) from None
    problem = _event_problem(event)
    if problem:
        raise WebhookRefused(f"Not a Stripe event: it needs {problem}.", code="malformed_event")
    return WebhookEvent(
        id=event["id"], type=event["type"], object=event["data"]["object"], payload=event
    )


def _signed_at(signature: str) -> int:
    """The header's timestamp, read as the SDK reads it (which has just checked it)."""
    items = [item.split("=", 2) for item in signature.split(",")]
    return int(next(item[1] for item in items if item[0] == "t"))


def _is_match(pattern: re.Pattern, value: Any) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _is_object_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= _MAX_OBJECT_ID


def _event_problem(event: dict[str, Any]) -> str | None:
    """What an event lacks of what the webhook view reads and stores, if anything."""
    if not _is_match(_EVENT_ID, event.get("id")):
        return "an id of letters, digits and _ (at most 255)"
    if not _is_match(_EVENT_TYPE, event.get("type")):
        return "a type such as payment_intent.succeeded (at most 100 characters)"
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return "an object in data.object"
    if "id" in obj and not _is_object_id(obj["id"]):
        return f"an object id of at most {_MAX_OBJECT_ID} characters"
    intent = obj.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    if intent is not None and not _is_object_id(intent):
        return f"a payment_intent id of at most {_MAX_OBJECT_ID} characters"
    return None
