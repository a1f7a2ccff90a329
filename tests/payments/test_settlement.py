"""Settling payments: capture all or part, release, refund; what Stripe holds
always matches our records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from config.errors import ApplicationError, InvalidInput
from payments import gateway
from payments.models import Payment, StripeCustomer
from payments.services import (
    payment_customer_ensure,
    payment_prepare,
    payment_refund,
    payment_settle,
)
from reservations.models import Status
from reservations.services import (
    payment_reference,
    reservation_arrive,
    reservation_complete,
    reservation_depart,
    reservation_mark_no_show,
)
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def paid(stripe, lot, driver):
    """A confirmed reservation of 2 days (price 2 x 2000, no-show charge 2000)."""
    reservation = book(driver, lot, start=timezone.now() + timedelta(hours=1), hours=48)
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())
    reservation.refresh_from_db()
    assert reservation.status == Status.CONFIRMED
    return reservation


def _payment(reservation) -> Payment:
    return Payment.objects.get(reference=payment_reference(reservation))


def _matches_stripe(stripe, payment: Payment) -> None:
    assert stripe.kept(payment.payment_intent_id) == payment.amount_net


def test_a_no_show_captures_only_the_first_24_hours_and_releases_the_rest(stripe, paid):
    result = reservation_mark_no_show(
        reservation_id=paid.pk, at=paid.start + timedelta(minutes=61)
    ).reservation
    payment = _payment(paid)

    assert result.amount_due == paid.no_show_amount == 2000
    assert (payment.status, payment.amount_authorised) == ("captured", 4000)
    assert (payment.amount_captured, payment.amount_refunded) == (2000, 0)
    _matches_stripe(stripe, payment)

    # Settling again (a retried job) changes nothing and calls nothing.
    payment_settle(reference=payment.reference, amount=2000)
    assert _payment(paid).attempts == payment.attempts


def test_leaving_captures_the_full_price(stripe, paid):
    reservation_arrive(reservation_id=paid.pk, at=paid.start)
    reservation_depart(reservation_id=paid.pk, at=paid.start + timedelta(hours=3))
    payment = _payment(paid)
    assert (payment.status, payment.amount_captured) == ("captured", 4000)
    _matches_stripe(stripe, payment)


def test_refunds_never_exceed_what_was_captured(stripe, paid):
    reservation_arrive(reservation_id=paid.pk, at=paid.start)
    reservation_depart(reservation_id=paid.pk, at=paid.start + timedelta(hours=3))
    reference = payment_reference(paid)

    payment_refund(reference=reference, amount=1500)
    with pytest.raises(InvalidInput) as exc:
        payment_refund(reference=reference, amount=2501)
    assert exc.value.code == "refund_exceeds_captured"
    payment_refund(reference=reference, amount=2500)

    payment = _payment(paid)
    assert (payment.amount_captured, payment.amount_refunded) == (4000, 4000)
    _matches_stripe(stripe, payment)
    with pytest.raises(InvalidInput):
        payment_refund(reference=reference, amount=1)


def test_an_uncaptured_hold_cannot_be_refunded(stripe, paid):
    with pytest.raises(ApplicationError) as exc:
        payment_refund(reference=payment_reference(paid), amount=100)
    assert exc.value.code == "payment_not_captured"


def test_no_stripe_call_is_made_inside_a_database_transaction(stripe, lot, driver):
    reservation = book(driver, lot)
    with pytest.raises(gateway.CallInsideTransaction), transaction.atomic():
        payment_prepare(
            reference=payment_reference(reservation), user=driver, amount=100, currency="eur"
        )
    assert stripe.intents() == []


def test_nothing_on_the_connection_lets_a_stripe_call_into_a_transaction(stripe, driver):
    connection.allow_stripe_in_atomic = True  # the escape hatch there used to be
    try:
        with pytest.raises(gateway.CallInsideTransaction), transaction.atomic():
            payment_customer_ensure(user=driver)
    finally:
        del connection.allow_stripe_in_atomic
    assert not StripeCustomer.objects.exists()
