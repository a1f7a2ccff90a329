"""Stripe webhooks: signed, processed once, harmless twice or out of order."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from payments.models import Payment, StripeEvent
from payments.services import PaymentDeclined, payment_authorise
from reservations.models import Status
from reservations.services import payment_reference, reservation_complete
from tests.reservations.helpers import book
from tests.stripe_support import DECLINED_CARD

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/payments/webhooks/stripe/"


def _signed(client, event: dict, secret: str = "whsec_test_parkspot"):  # noqa: S107
    payload = json.dumps(event)
    timestamp = int(time.time())
    signature = hmac.new(
        secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256
    ).hexdigest()
    return client.post(
        URL,
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=f"t={timestamp},v1={signature}",
    )


def _event(event_id: str, event_type: str, obj: dict) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }


@pytest.fixture
def paid(stripe, lot, driver):
    reservation = book(driver, lot, start=timezone.now() + timedelta(hours=1), hours=4)
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())
    return Payment.objects.get(reference=payment_reference(reservation))


def test_an_unsigned_or_badly_signed_event_is_refused(client, stripe, paid):
    event = _event("evt_1", "payment_intent.succeeded", {"id": paid.payment_intent_id})
    assert (
        client.post(URL, data=json.dumps(event), content_type="application/json").status_code == 400
    )
    forged = _signed(client, event, secret="whsec_someone_else")
    assert forged.status_code == 400
    assert forged.json()["code"] == "bad_signature"
    assert not StripeEvent.objects.exists()


def test_a_capture_made_at_stripe_reaches_our_records(client, stripe, paid):
    stripe.client.v1.payment_intents.capture(
        paid.payment_intent_id, params={"amount_to_capture": 500}
    )
    event = _event("evt_2", "payment_intent.succeeded", {"id": paid.payment_intent_id})

    assert _signed(client, event).status_code == 200
    paid.refresh_from_db()
    assert (paid.status, paid.amount_captured, paid.amount_refunded) == ("captured", 1000, 500)
    assert paid.amount_net == stripe.kept(paid.payment_intent_id) == 500
    assert StripeEvent.objects.get().processed_at is not None


def test_the_same_event_twice_is_processed_once(client, stripe, paid):
    stripe.client.v1.payment_intents.capture(paid.payment_intent_id)
    stripe.client.v1.refunds.create(
        params={"payment_intent": paid.payment_intent_id, "amount": 300}
    )
    event = _event(
        "evt_3", "charge.refunded", {"id": "ch_x", "payment_intent": paid.payment_intent_id}
    )

    first = _signed(client, event)
    second = _signed(client, event)

    assert first.status_code == second.status_code == 200
    assert second.json()["duplicate"] is True
    paid.refresh_from_db()
    assert (paid.amount_captured, paid.amount_refunded) == (1000, 300)
    assert StripeEvent.objects.count() == 1


def test_an_old_event_arriving_late_never_moves_a_payment_backwards(client, stripe, paid):
    stripe.client.v1.payment_intents.capture(paid.payment_intent_id)
    late_first = _event(
        "evt_4", "payment_intent.amount_capturable_updated", {"id": paid.payment_intent_id}
    )
    newer = _event("evt_5", "payment_intent.succeeded", {"id": paid.payment_intent_id})

    assert _signed(client, newer).status_code == 200
    assert _signed(client, late_first).status_code == 200

    paid.refresh_from_db()
    assert (paid.status, paid.amount_captured) == ("captured", 1000)


def test_a_hold_released_at_stripe_is_recorded(client, stripe, paid):
    stripe.client.v1.payment_intents.cancel(paid.payment_intent_id)
    _signed(client, _event("evt_6", "payment_intent.canceled", {"id": paid.payment_intent_id}))
    paid.refresh_from_db()
    assert paid.status == "canceled"


def test_an_authorisation_we_never_heard_back_about_confirms_the_booking(
    client, stripe, lot, driver
):
    """The response to our authorisation was lost; Stripe's webhook tells us."""
    reservation = book(driver, lot, start=timezone.now() + timedelta(hours=1))
    reference = payment_reference(reservation)
    Payment.objects.create(
        reference=reference,
        user=driver,
        amount=reservation.price_amount,
        currency="eur",
        operation="authorise",
        operation_key=f"{reference}:booking:authorise:1",
        operation_started_at=timezone.now(),
    )
    customer = stripe.client.v1.customers.create(params={"email": driver.email})
    intent = stripe.client.v1.payment_intents.create(
        params={
            "amount": reservation.price_amount,
            "currency": "eur",
            "customer": customer.id,
            "payment_method": stripe.card(),
            "capture_method": "manual",
            "confirm": True,
            "metadata": {"reference": reference, "kind": "booking"},
        }
    )

    _signed(client, _event("evt_7", "payment_intent.amount_capturable_updated", {"id": intent.id}))

    payment = Payment.objects.get(reference=reference)
    assert (payment.status, payment.payment_intent_id, payment.operation) == (
        "authorised",
        intent.id,
        "",
    )
    reservation.refresh_from_db()
    assert reservation.status == Status.CONFIRMED


def test_events_about_other_things_are_acknowledged_and_ignored(client, stripe):
    response = _signed(client, _event("evt_8", "customer.created", {"id": "cus_1"}))
    assert response.status_code == 200
    assert StripeEvent.objects.get().processed_at is not None


def test_an_event_about_a_declined_card_never_takes_over_the_next_payment(
    client, stripe, stripe_proxy, driver
):
    pay = {"reference": "test:wh-1", "user": driver, "amount": 900, "currency": "eur"}
    with pytest.raises(PaymentDeclined):
        payment_authorise(**pay, payment_method_id=stripe.card(DECLINED_CARD))
    (declined,) = stripe.intents()
    slow_create = stripe_proxy.hold("POST", "/v1/payment_intents")
    outcome: list = []

    def pay_with_another_card(card: str) -> None:
        try:
            outcome.append(payment_authorise(**pay, payment_method_id=card))
        except Exception as exc:  # asserted below
            outcome.append(exc)
        finally:
            connections.close_all()

    paying = threading.Thread(target=pay_with_another_card, args=(stripe.card(),))
    paying.start()
    slow_create.wait_until_arrived()
    failed = _event("evt_9", "payment_intent.payment_failed", {"id": declined["id"]})
    assert _signed(client, failed).status_code == 200
    slow_create.release()
    paying.join(timeout=30)

    payment = Payment.objects.get(reference="test:wh-1")
    assert outcome == [payment]
    assert payment.status == "authorised"
    assert payment.payment_intent_id not in ("", declined["id"])
    assert stripe.intent(payment.payment_intent_id)["status"] == "requires_capture"
