"""Every PaymentIntent we create is recorded; one a card left open (declined,
or needing a check we cannot do) is cancelled at Stripe, now or by the retry
job."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from config.errors import PaymentFailed
from payments.models import Payment, PaymentAttempt
from payments.services import (
    PaymentDeclined,
    PaymentUnavailable,
    payment_authorise,
    payment_charge_saved_card,
    payment_operations_retry,
)
from tests.stripe_support import DECLINED_CARD

pytestmark = pytest.mark.django_db(transaction=True)

REFERENCE = "test:attempt-1"
NEEDS_3DS_CARD = "4000002760003184"


def _pay(driver, card: str) -> Payment:
    return payment_authorise(
        reference=REFERENCE, user=driver, amount=1000, currency="eur", payment_method_id=card
    )


def test_a_declined_card_is_recorded_and_its_intent_cancelled_at_stripe(stripe, driver):
    with pytest.raises(PaymentDeclined):
        _pay(driver, stripe.card(DECLINED_CARD))

    attempt = PaymentAttempt.objects.get()
    assert (attempt.outcome, attempt.error_code) == ("declined", "card_declined")
    assert attempt.canceled_at is not None
    assert stripe.intent(attempt.intent_id)["status"] == "canceled"
    assert attempt.payment.payment_intent_id == ""  # the payment points only at what paid


def test_a_card_needing_authentication_is_recorded_and_its_intent_cancelled(stripe, driver):
    with pytest.raises(PaymentDeclined) as declined:
        _pay(driver, stripe.card(NEEDS_3DS_CARD))

    assert declined.value.code == "authentication_required"
    attempt = PaymentAttempt.objects.get()
    assert (attempt.outcome, attempt.error_code) == ("requires_action", "authentication_required")
    assert attempt.canceled_at is not None
    assert stripe.intent(attempt.intent_id)["status"] == "canceled"


def test_every_intent_of_a_payment_is_recorded_and_the_payment_points_at_the_one_that_paid(
    stripe, driver
):
    with pytest.raises(PaymentDeclined):
        _pay(driver, stripe.card(DECLINED_CARD))
    payment = _pay(driver, stripe.card())

    attempts = {a.outcome: a for a in PaymentAttempt.objects.filter(payment=payment)}
    assert set(attempts) == {"declined", "authorised"}
    assert payment.payment_intent_id == attempts["authorised"].intent_id
    assert attempts["authorised"].canceled_at is None
    assert stripe.intent(payment.payment_intent_id)["status"] == "requires_capture"


def test_a_declined_intent_whose_cancel_failed_is_cancelled_by_the_retry_job(
    stripe, stripe_proxy, driver
):
    stripe_proxy.fail("POST", "/cancel")
    with pytest.raises(PaymentDeclined):
        _pay(driver, stripe.card(DECLINED_CARD))
    attempt = PaymentAttempt.objects.get()
    assert attempt.canceled_at is None
    assert stripe.intent(attempt.intent_id)["status"] == "requires_payment_method"

    stripe_proxy.heal()
    assert payment_operations_retry() == 0  # the decline handler's minute is not up
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        assert payment_operations_retry() == 1
        assert payment_operations_retry() == 0

    attempt.refresh_from_db()
    assert attempt.canceled_at is not None
    assert stripe.intent(attempt.intent_id)["status"] == "canceled"


def test_a_declined_off_session_charge_fails_for_good_and_its_intent_is_cancelled(stripe, driver):
    # The booking's card was saved though declined: every charge of it fails.
    with pytest.raises(PaymentDeclined):
        _pay(driver, stripe.card(DECLINED_CARD))

    with pytest.raises(PaymentFailed) as failed:
        payment_charge_saved_card(
            reference=REFERENCE,
            kind="overstay",
            amount=300,
            currency="eur",
            card_from_kind="booking",
        )

    assert failed.value.code == "payment_declined"
    overstay = Payment.objects.get(reference=REFERENCE, kind="overstay")
    assert (overstay.status, overstay.last_error_code) == ("failed", "card_declined")
    attempt = PaymentAttempt.objects.get(payment=overstay)
    assert attempt.outcome == "declined"
    assert stripe.intent(attempt.intent_id)["status"] == "canceled"


def test_the_retry_job_authorises_the_new_card_after_one_needing_authentication(
    stripe, stripe_proxy, driver
):
    with pytest.raises(PaymentDeclined):
        _pay(driver, stripe.card(NEEDS_3DS_CARD))
    stripe_proxy.fail("POST", "/v1/payment_intents")
    with pytest.raises(PaymentUnavailable):
        _pay(driver, stripe.card())
    stripe_proxy.heal()

    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        assert payment_operations_retry() == 1

    payment = Payment.objects.get(reference=REFERENCE)
    assert (payment.status, payment.operation) == ("authorised", "")
    assert stripe.intent(payment.payment_intent_id)["status"] == "requires_capture"
    assert PaymentAttempt.objects.get(intent_id=payment.payment_intent_id).outcome == "authorised"
