"""Stripe webhooks: signed, processed once, harmless twice or out of order."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connections
from django.utils import timezone

from payments.models import Payment, StripeEvent
from payments.services import (
    PaymentDeclined,
    payment_authorise,
    stripe_event_record,
    stripe_events_prune,
)
from reservations.models import Status
from reservations.services import payment_reference, reservation_complete
from tests.reservations.helpers import book
from tests.stripe_support import DECLINED_CARD

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/payments/webhooks/stripe/"


def _signed(
    client,
    event: dict | list | str,
    secret: str = "whsec_test_parkspot",  # noqa: S107
    *,
    ahead: int = 0,
):
    """POST the event (or raw JSON text) signed as Stripe would, `ahead` seconds from now."""
    payload = event if isinstance(event, str) else json.dumps(event)
    timestamp = int(time.time()) + ahead
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


@pytest.fixture
def webhook_secret(settings):
    """Signed webhooks without Stripe: for events refused before anything is asked of it."""
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test_parkspot"


def _assert_refused(response, code: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == code, body
    assert body["detail"]
    assert not StripeEvent.objects.exists()


GOOD = _event("evt_10", "customer.created", {"id": "cus_1"})


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({k: v for k, v in GOOD.items() if k != "id"}, id="no-id"),
        pytest.param({k: v for k, v in GOOD.items() if k != "type"}, id="no-type"),
        pytest.param({k: v for k, v in GOOD.items() if k != "data"}, id="no-data"),
        pytest.param({**GOOD, "data": {}}, id="no-data-object"),
        pytest.param({**GOOD, "data": "cus_1"}, id="data-a-string"),
        pytest.param({**GOOD, "data": {"object": "cus_1"}}, id="data-object-a-string"),
        pytest.param({**GOOD, "data": {"object": ["cus_1"]}}, id="data-object-a-list"),
        pytest.param({**GOOD, "data": {"object": None}}, id="data-object-null"),
        pytest.param({**GOOD, "id": 10}, id="id-a-number"),
        pytest.param({**GOOD, "id": ""}, id="id-empty"),
        pytest.param({**GOOD, "id": "evt_" + "x" * 252}, id="id-256-characters"),
        pytest.param({**GOOD, "id": "evt 10; DROP"}, id="id-not-an-id"),
        pytest.param({**GOOD, "type": ["customer.created"]}, id="type-a-list"),
        pytest.param({**GOOD, "type": "customer." + "x" * 92}, id="type-101-characters"),
        pytest.param({**GOOD, "data": {"object": {"id": None}}}, id="object-id-null"),
        pytest.param({**GOOD, "data": {"object": {"id": "c" * 256}}}, id="object-id-too-long"),
        pytest.param(
            _event("evt_11", "charge.refunded", {"id": "ch_1", "payment_intent": 42}),
            id="payment-intent-a-number",
        ),
        pytest.param(
            _event("evt_12", "charge.refunded", {"id": "ch_1", "payment_intent": {"id": []}}),
            id="payment-intent-id-a-list",
        ),
    ],
)
def test_a_signed_event_without_what_an_event_has_is_400_and_stores_nothing(
    client, webhook_secret, event
):
    _assert_refused(_signed(client, event), "malformed_event")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param(json.dumps([GOOD]), "not_an_object", id="json-array"),
        pytest.param('"evt_10"', "not_an_object", id="json-string"),
        pytest.param(json.dumps({**GOOD, "id": "evt_1\x00"}), "invalid_character", id="nul-id"),
        pytest.param(
            json.dumps({**GOOD, "data": {"object": {"id": "cus_1", "name": "\x00"}}}),
            "invalid_character",
            id="nul-in-the-object",  # PostgreSQL's jsonb cannot store it
        ),
        pytest.param('{"id": "\\ud800"}', "invalid_character", id="lone-surrogate"),
        pytest.param('{"a":' * 1000 + "1" + "}" * 1000, "too_deeply_nested", id="1000-deep"),
        pytest.param('{"id": ' + "1" * 5000 + "}", "number_out_of_range", id="5000-digits"),
        pytest.param("{", "malformed_request", id="not-json"),
    ],
)
def test_a_signed_body_that_is_no_json_object_is_400_and_stores_nothing(
    client, webhook_secret, raw, code
):
    _assert_refused(_signed(client, raw), code)


def test_an_event_signed_an_hour_ahead_is_refused(client, webhook_secret, settings):
    # Stripe's SDK checks only that a signature is not too old: one dated ahead
    # could be replayed until long after it was captured.
    _assert_refused(_signed(client, GOOD, ahead=3600), "bad_signature")
    _assert_refused(
        _signed(client, GOOD, ahead=settings.STRIPE_WEBHOOK_TOLERANCE + 5), "bad_signature"
    )


def test_an_event_signed_a_little_ahead_is_taken_as_clocks_differ(client, webhook_secret):
    response = _signed(client, GOOD, ahead=60)

    assert response.status_code == 200, response.content
    assert StripeEvent.objects.get().event_id == "evt_10"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("t=1,v1=\u00e9", id="non-ascii-signature"),
        pytest.param("t=,v1=abc", id="no-timestamp"),
        pytest.param("t=" + "9" * 5000 + ",v1=abc", id="huge-timestamp"),
        pytest.param("v1=abc", id="no-t"),
        pytest.param("garbage", id="garbage"),
    ],
)
def test_a_malformed_signature_header_is_400_bad_signature(client, webhook_secret, header):
    response = client.post(
        URL, json.dumps(GOOD), content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )

    _assert_refused(response, "bad_signature")


def test_a_body_that_is_not_utf8_is_400_bad_signature(client, webhook_secret):
    response = client.post(
        URL, b"\xff\xfe{}", content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=a"
    )

    _assert_refused(response, "bad_signature")


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


def test_an_event_about_an_intent_stripe_does_not_know_is_acknowledged_not_retried(client, stripe):
    # Answering 5xx would have Stripe retry for days an event no retry can settle.
    event = _event("evt_13", "payment_intent.succeeded", {"id": "pi_nobody_made"})

    response = _signed(client, event)

    assert response.status_code == 200, response.content
    assert response.json() == {"received": True, "ignored": "unknown_payment_intent"}
    assert StripeEvent.objects.get().processed_at is not None
    assert not Payment.objects.exists()


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


def test_processed_events_are_forgotten_after_their_days_unprocessed_ones_kept(
    client, webhook_secret, settings
):
    settings.STRIPE_EVENT_DAYS = 30
    with time_machine.travel(timezone.now(), tick=True) as clock:
        # One Stripe will redeliver (we answered 503, say): never processed.
        stripe_event_record(event_id="evt_open", type="charge.refunded", object_id="", payload={})
        old = _event("evt_old", "customer.created", {"id": "c1"})
        new = _event("evt_new", "customer.created", {"id": "c2"})
        assert _signed(client, old).status_code == 200
        clock.shift(timedelta(days=2))
        assert _signed(client, new).status_code == 200
        clock.shift(timedelta(days=29))  # the old one 31 days old, the new one 29

        assert stripe_events_prune(batch=1) == 1
        assert stripe_events_prune() == 0
        left = set(StripeEvent.objects.values_list("event_id", flat=True))
        assert left == {"evt_open", "evt_new"}
        # Sent again after that (by hand, from Stripe's dashboard), it is
        # processed again: processing reads the intent afresh, so that is safe.
        again = _signed(client, old)

    assert again.json() == {"received": True}
