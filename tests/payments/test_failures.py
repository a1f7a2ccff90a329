"""What the settling caller can tell apart: PaymentUnavailable and
PaymentInProgress (try again later) from PaymentFailed (permanent: Stripe or
the payment's state refuses the operation)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from config.errors import PaymentFailed
from payments.models import Payment
from payments.services import (
    PaymentUnavailable,
    payment_authorise,
    payment_charge_saved_card,
    payment_operations_retry,
    payment_prepare,
    payment_settle,
)

pytestmark = pytest.mark.django_db(transaction=True)

REFERENCE = "test:fail-1"


def _held(stripe, driver) -> Payment:
    return payment_authorise(
        reference=REFERENCE,
        user=driver,
        amount=1000,
        currency="eur",
        payment_method_id=stripe.card(),
    )


def test_capturing_a_hold_released_at_stripe_behind_our_back_fails_for_good(stripe, driver):
    payment = _held(stripe, driver)
    stripe.client.v1.payment_intents.cancel(payment.payment_intent_id)

    with pytest.raises(PaymentFailed) as failed:
        payment_settle(reference=REFERENCE, amount=300)

    assert failed.value.code == "payment_operation_failed"
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured, payment.operation) == ("authorised", 0, "")
    assert payment.last_error_code == "payment_intent_unexpected_state"
    # Settling again asks Stripe again (the same key) and fails the same way.
    with pytest.raises(PaymentFailed):
        payment_settle(reference=REFERENCE, amount=300)


def test_settling_for_money_a_payment_never_made_fails_for_good(stripe, driver):
    payment_prepare(reference=REFERENCE, user=driver, amount=1000, currency="eur")
    with pytest.raises(PaymentFailed) as failed:
        payment_settle(reference=REFERENCE, amount=100)
    assert failed.value.code == "payment_not_made"
    assert failed.value.status == 409


def test_charging_a_saved_card_there_is_none_of_fails_for_good(stripe, driver):
    payment_prepare(reference=REFERENCE, user=driver, amount=1000, currency="eur")
    with pytest.raises(PaymentFailed) as failed:
        payment_charge_saved_card(
            reference=REFERENCE,
            kind="overstay",
            amount=300,
            currency="eur",
            card_from_kind="booking",
        )
    assert failed.value.code == "no_saved_card"


def test_settling_while_stripe_is_down_is_worth_trying_again(stripe, stripe_proxy, driver):
    payment = _held(stripe, driver)
    stripe_proxy.fail("POST", "/capture")
    with pytest.raises(PaymentUnavailable):
        payment_settle(reference=REFERENCE, amount=300)
    payment.refresh_from_db()
    assert (payment.status, payment.operation) == ("authorised", "capture")


def test_a_capture_the_retry_job_finds_stripe_refusing_ends_as_a_permanent_failure(
    stripe, stripe_proxy, driver
):
    payment = _held(stripe, driver)
    stripe_proxy.fail("POST", "/capture")
    with pytest.raises(PaymentUnavailable):
        payment_settle(reference=REFERENCE, amount=300)
    stripe_proxy.heal()
    stripe.client.v1.payment_intents.cancel(payment.payment_intent_id)  # the hold lapsed

    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        assert payment_operations_retry() == 1
    payment.refresh_from_db()
    assert (payment.operation, payment.last_error_code) == ("", "payment_intent_unexpected_state")
    with pytest.raises(PaymentFailed):  # not "in progress" for ever
        payment_settle(reference=REFERENCE, amount=300)
