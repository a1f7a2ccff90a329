"""A payment operation is claimed, run at Stripe, then finished; a slow call may
be taken over by the retry job, and finishing is compare-and-set on the claim."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connections
from django.utils import timezone

from payments.models import Payment
from payments.services import (
    payment_authorise,
    payment_operations_retry,
    payment_refund,
    payment_settle,
)

pytestmark = pytest.mark.django_db(transaction=True)

REFERENCE = "test:ops-1"


def _authorised(stripe, driver, *, capture_later: bool = True) -> Payment:
    return payment_authorise(
        reference=REFERENCE,
        user=driver,
        amount=1000,
        currency="eur",
        payment_method_id=stripe.card(),
        capture_later=capture_later,
    )


class _InThread:
    """Run a call in its own thread (own database connection); keep its outcome."""

    def __init__(self, fn, **kwargs):
        self.result = self.error = None
        self._thread = threading.Thread(target=self._run, args=(fn, kwargs))
        self._thread.start()

    def _run(self, fn, kwargs) -> None:
        try:
            self.result = fn(**kwargs)
        except Exception as exc:  # asserted by the test
            self.error = exc
        finally:
            connections.close_all()

    def join(self):
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()
        return self


def _row(payment_id: int) -> dict:
    return Payment.objects.filter(pk=payment_id).values().get()


def test_a_slow_call_finishing_after_the_retry_job_took_it_over_changes_nothing(
    stripe, stripe_proxy, driver
):
    payment = _authorised(stripe, driver)
    slow_capture = stripe_proxy.hold("POST", "/capture")
    original = _InThread(payment_settle, reference=REFERENCE, amount=300)
    slow_capture.wait_until_arrived()

    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        assert payment_operations_retry() == 1  # captures with the same key
    after_retry = _row(payment.pk)
    assert (after_retry["status"], after_retry["amount_captured"]) == ("captured", 300)

    slow_capture.release()  # Stripe refuses the repeat: already captured
    original.join()

    assert _row(payment.pk) == after_retry
    assert original.error is None
    assert original.result.status == "captured"
    assert stripe.kept(payment.payment_intent_id) == 300


def test_a_slow_call_finishing_after_a_newer_claim_leaves_that_claim_in_place(
    stripe, stripe_proxy, driver
):
    payment = _authorised(stripe, driver)
    slow_capture = stripe_proxy.hold("POST", "/capture")
    original = _InThread(payment_settle, reference=REFERENCE, amount=600)
    slow_capture.wait_until_arrived()
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        assert payment_operations_retry() == 1
    slow_refund = stripe_proxy.hold("POST", "/v1/refunds")
    newer = _InThread(payment_refund, reference=REFERENCE, amount=100)
    slow_refund.wait_until_arrived()
    claimed = _row(payment.pk)
    assert claimed["operation"] == "refund"

    slow_capture.release()
    original.join()

    assert _row(payment.pk) == claimed
    slow_refund.release()
    newer.join()
    assert newer.error is None
    payment.refresh_from_db()
    assert (payment.amount_captured, payment.amount_refunded, payment.operation) == (600, 100, "")
    assert stripe.kept(payment.payment_intent_id) == payment.amount_net == 500
