"""Payments' metrics against localstripe: the money each operation moved, in
minor units by currency; declines by their code; operations Stripe did not
answer counted as unknown until the retry job finishes them."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from config.errors import PaymentFailed
from payments.metrics import facts
from payments.services import (
    PaymentUnavailable,
    payment_authorise,
    payment_operations_retry,
    payment_refund,
    payment_settle,
)
from tests.metrics_support import Deltas
from tests.stripe_support import DECLINED_CARD

pytestmark = pytest.mark.django_db(transaction=True)

EUR = {"currency": "eur", "kind": "booking"}


def _pay(stripe, driver, reference: str, *, amount: int = 1000, capture_later: bool = True):
    return payment_authorise(
        reference=reference,
        user=driver,
        amount=amount,
        currency="eur",
        payment_method_id=stripe.card(),
        capture_later=capture_later,
    )


def test_a_partial_capture_counts_the_captured_and_the_released_amounts(stripe, driver):
    moved = Deltas()

    _pay(stripe, driver, "test:metrics-1")
    payment_settle(reference="test:metrics-1", amount=300)
    payment_settle(reference="test:metrics-1", amount=300)  # again: nothing more

    assert moved("parkspot_authorised_minor_units_total", **EUR) == 1000
    assert moved("parkspot_captured_minor_units_total", **EUR) == 300
    assert moved("parkspot_released_minor_units_total", **EUR) == 700
    assert moved("parkspot_payment_operations_total", operation="capture", outcome="succeeded") == 1


def test_a_released_hold_counts_the_whole_amount_released(stripe, driver):
    moved = Deltas()

    _pay(stripe, driver, "test:metrics-2", amount=1500)
    payment_settle(reference="test:metrics-2", amount=0)

    assert moved("parkspot_released_minor_units_total", **EUR) == 1500
    assert moved("parkspot_captured_minor_units_total", **EUR) == 0
    assert moved("parkspot_payment_operations_total", operation="cancel", outcome="succeeded") == 1


def test_a_charge_made_at_once_and_settled_by_refunds_counts_each_refund(stripe, driver):
    moved = Deltas()

    _pay(stripe, driver, "test:metrics-3", capture_later=False)
    payment_settle(reference="test:metrics-3", amount=400)
    payment_refund(reference="test:metrics-3", amount=100)

    assert moved("parkspot_captured_minor_units_total", **EUR) == 1000
    assert moved("parkspot_refunded_minor_units_total", **EUR) == 700
    assert moved("parkspot_released_minor_units_total", **EUR) == 0
    assert moved("parkspot_payment_operations_total", operation="refund", outcome="succeeded") == 2


def test_a_declined_card_is_a_failed_authorisation_counted_with_its_code(stripe, driver):
    moved = Deltas()

    with pytest.raises(PaymentFailed):
        payment_authorise(
            reference="test:metrics-4",
            user=driver,
            amount=1000,
            currency="eur",
            payment_method_id=stripe.card(DECLINED_CARD),
        )

    assert moved("parkspot_payment_operations_total", operation="authorise", outcome="failed") == 1
    failures = moved("parkspot_payment_failures_total", operation="authorise", code="card_declined")
    assert failures == 1
    assert moved("parkspot_authorised_minor_units_total") == 0
    assert moved("parkspot_stripe_requests_total", result="declined") == 1


def test_an_operation_stripe_does_not_answer_is_unknown_until_the_retry_job_finishes_it(
    stripe, stripe_proxy, driver
):
    _pay(stripe, driver, "test:metrics-5")
    moved = Deltas()
    stripe_proxy.fail("POST", "/capture")

    with pytest.raises(PaymentUnavailable):
        payment_settle(reference="test:metrics-5", amount=600)

    assert moved("parkspot_payment_operations_total", operation="capture", outcome="unknown") == 1
    assert moved("parkspot_stripe_requests_total", call="capture_payment_intent", result="unknown")
    assert moved("parkspot_captured_minor_units_total") == 0
    unresolved = ("parkspot_payment_operations_unresolved", {"operation": "capture"})
    later = timezone.now() + timedelta(minutes=2)
    assert _gauge(timezone.now(), *unresolved) == 0  # its first minute: still its caller's
    assert _gauge(later, *unresolved) == 1
    overdue = _gauge(later, "parkspot_sweep_overdue_seconds", {"sweep": "retry_payment_operations"})
    assert overdue > 0

    stripe_proxy.heal()
    with time_machine.travel(later):
        assert payment_operations_retry() == 1
    assert moved("parkspot_payment_operations_total", operation="capture", outcome="succeeded") == 1
    assert moved("parkspot_captured_minor_units_total", **EUR) == 600
    assert _gauge(later, *unresolved) == 0


def _gauge(now, name: str, labels: dict) -> float:
    for family in facts(now):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError(f"{name} {labels} not found")
