"""Settling one payment from many threads at once, on PostgreSQL, against a
real localstripe: money moves once, and callers only ever see the payment or
PaymentInProgress."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connections
from django.utils import timezone

from config.errors import InvalidInput
from payments.models import Payment
from payments.services import (
    PaymentInProgress,
    PaymentUnavailable,
    payment_authorise,
    payment_operations_retry,
    payment_refund,
    payment_settle,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REFERENCE = "test:race-1"
THREADS = 12
# A caller that finds an operation in flight tries again; this bounds the loop.
MAX_TRIES = 5000


def _charged(stripe, driver) -> Payment:
    """A booking charged at once (capture_mode immediate), settled by refunds."""
    return payment_authorise(
        reference=REFERENCE,
        user=driver,
        amount=1000,
        currency="eur",
        payment_method_id=stripe.card(),
        capture_later=False,
    )


def _until_not_in_progress(call, **kwargs):
    for _ in range(MAX_TRIES):
        try:
            return call(**kwargs)
        except PaymentInProgress:
            continue
    raise AssertionError("an operation stayed in flight")


def _at_once(*calls) -> tuple[list, list[Exception]]:
    """Run the calls in threads released together; their results and errors."""
    barrier = threading.Barrier(len(calls))
    results: list = []
    errors: list[Exception] = []

    def run(call) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(call())
        except Exception as exc:  # asserted by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results, errors


def _refunds_at_stripe(stripe, intent_id: str) -> list[int]:
    refunds = stripe.client.v1.refunds.list(params={"payment_intent": intent_id}).data
    return [refund.amount for refund in refunds]


def test_twelve_cancels_at_once_of_a_booking_charged_at_once_refund_it_once(stripe, driver):
    payment = _charged(stripe, driver)

    def cancel():
        return _until_not_in_progress(payment_settle, reference=REFERENCE, amount=0)

    results, errors = _at_once(*[cancel] * THREADS)

    assert errors == []
    assert len(results) == THREADS
    payment.refresh_from_db()
    assert (payment.amount_captured, payment.amount_refunded, payment.operation) == (1000, 1000, "")
    assert _refunds_at_stripe(stripe, payment.payment_intent_id) == [1000]
    assert stripe.kept(payment.payment_intent_id) == payment.amount_net == 0


def test_settling_while_the_retry_job_finishes_the_same_refund_refunds_once(
    stripe, driver, settings
):
    payment = _charged(stripe, driver)
    real_stripe = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # unreachable: the outcome is unknown
    with pytest.raises(PaymentUnavailable):
        payment_settle(reference=REFERENCE, amount=0)
    settings.STRIPE_API_BASE = real_stripe

    def settle():
        return _until_not_in_progress(payment_settle, reference=REFERENCE, amount=0)

    def retry_job() -> int:
        # Runs again while the operation is pending, as the scheduler would: a
        # run skips the row while a caller holds its lock.
        finished = 0
        for _ in range(MAX_TRIES):
            finished += payment_operations_retry()
            if not Payment.objects.filter(pk=payment.pk).exclude(operation="").exists():
                return finished
        raise AssertionError("the retry job never finished the refund")

    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        results, errors = _at_once(*[settle] * (THREADS // 2), *[retry_job] * (THREADS // 2))

    assert errors == []
    assert sum(r for r in results if isinstance(r, int)) == 1
    payment.refresh_from_db()
    assert (payment.amount_refunded, payment.operation) == (1000, "")
    assert _refunds_at_stripe(stripe, payment.payment_intent_id) == [1000]
    assert stripe.kept(payment.payment_intent_id) == payment.amount_net == 0


def test_staff_refunds_at_once_never_give_back_more_than_was_kept(stripe, driver):
    payment = _charged(stripe, driver)

    def refund_300():
        try:
            return _until_not_in_progress(payment_refund, reference=REFERENCE, amount=300)
        except InvalidInput as exc:
            return exc.code

    results, errors = _at_once(*[refund_300] * THREADS)

    assert errors == []
    assert sorted(r for r in results if isinstance(r, str)) == ["refund_exceeds_captured"] * 9
    payment.refresh_from_db()
    assert (payment.amount_refunded, payment.operation) == (900, "")
    assert sorted(_refunds_at_stripe(stripe, payment.payment_intent_id)) == [300, 300, 300]
    assert stripe.kept(payment.payment_intent_id) == payment.amount_net == 100
