"""Settling finished reservations: every cent by one rule, visibly.

A settlement is pending, then settled, or needs attention with its reason;
what retrying can cure is retried with backoff, what it cannot is not, and
nothing starves the queue. Real localstripe throughout.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connections
from django.utils import timezone

from config.errors import ApplicationError
from lots.services import rate_set
from payments.models import Payment
from payments.services import payment_authorise
from reservations.models import Reservation, Settlement, Status
from reservations.services import (
    payment_reference,
    reservation_arrive,
    reservation_cancel,
    reservation_complete,
    reservation_depart,
    reservation_settlement_retry,
    reservations_settle_pending,
)
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def one_spot_lot():
    lot = LotFactory(currency="usd")
    RateFactory(lot=lot, hourly_amount=300, daily_max_amount=2400)
    SpotFactory(lot=lot)
    return lot


def _paid(stripe, lot, user, *, start, hours) -> Reservation:
    reservation = book(user, lot, start=start, hours=hours)
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())
    reservation.refresh_from_db()
    return reservation


def _payment(reservation, kind="booking") -> Payment:
    return Payment.objects.get(reference=payment_reference(reservation), kind=kind)


def test_a_capture_stripe_refuses_needs_attention_and_the_overstay_is_still_charged(
    stripe, one_spot_lot, driver
):
    start = timezone.now() + timedelta(minutes=1)
    reservation = _paid(stripe, one_spot_lot, driver, start=start, hours=2)
    reservation_arrive(reservation_id=reservation.pk, at=start)
    # Someone took part of the hold by hand in Stripe's dashboard: Stripe will
    # refuse our capture, and retrying cannot change that.
    stripe.client.v1.payment_intents.capture(
        _payment(reservation).payment_intent_id, params={"amount_to_capture": 100}
    )

    left = reservation.end + timedelta(minutes=30)
    with time_machine.travel(left):
        done = reservation_depart(reservation_id=reservation.pk, at=left).reservation
    done.refresh_from_db()

    assert done.settlement == Settlement.ATTENTION
    assert done.settled_at is None
    assert "booking:" in done.settlement_error
    overstay = _payment(reservation, "overstay")
    assert (overstay.status, overstay.amount_captured) == ("captured", 300)
    assert stripe.kept(overstay.payment_intent_id) == 300
    # Needing attention, it is not retried by the sweep...
    assert reservations_settle_pending(now=left + timedelta(days=1)) == 0
    assert Reservation.objects.get(pk=reservation.pk).settlement_attempts == 1


def test_staff_can_retry_a_settlement_that_needed_attention(stripe, one_spot_lot, driver):
    start = timezone.now() + timedelta(minutes=1)
    reservation = _paid(stripe, one_spot_lot, driver, start=start, hours=2)
    reservation_arrive(reservation_id=reservation.pk, at=start)
    real = stripe.url
    from django.conf import settings

    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # Stripe unreachable: transient
    reservation_depart(reservation_id=reservation.pk, at=reservation.end)
    settings.STRIPE_API_BASE = real
    pending = Reservation.objects.get(pk=reservation.pk)
    assert pending.settlement == Settlement.PENDING
    assert "did not answer" in pending.settlement_error or pending.settlement_error

    # The retry job finishes the capture whose outcome was unknown, then the sweep settles.
    from payments.services import payment_operations_retry

    later = timezone.now() + timedelta(minutes=5)
    with time_machine.travel(later):
        payment_operations_retry()
        assert reservations_settle_pending() == 1
    assert Reservation.objects.get(pk=reservation.pk).settlement == Settlement.SETTLED
    assert reservation_settlement_retry(reservation_id=reservation.pk) == Settlement.SETTLED
    assert stripe.kept(_payment(reservation).payment_intent_id) == 600


def test_a_hold_expired_by_a_new_booking_is_settled_and_a_late_authorisation_released(
    stripe, one_spot_lot, driver
):
    start = timezone.now() + timedelta(hours=2)
    lapsed = book(driver, one_spot_lot, start=start)
    with time_machine.travel(lapsed.hold_expires_at + timedelta(seconds=1)):
        taker = book(UserFactory(), one_spot_lot, start=start)  # expires it on the way
    lapsed.refresh_from_db()
    assert (lapsed.status, lapsed.amount_due, lapsed.settlement) == ("expired", 0, "settled")
    assert taker.spot_id == lapsed.spot_id

    # Stripe's answer to the driver's payment comes late (a retry, a webhook).
    payment = payment_authorise(
        reference=payment_reference(lapsed),
        user=driver,
        amount=lapsed.price_amount,
        currency=lapsed.currency,
        payment_method_id=stripe.card(),
    )
    assert stripe.intent(payment.payment_intent_id)["status"] == "canceled"
    assert _payment(lapsed).status == "canceled"
    assert Reservation.objects.get(pk=lapsed.pk).settlement == Settlement.SETTLED


def _unsettled(lot, user, n: int, *, intent: str) -> list[int]:
    """n completed reservations whose booking payment is a hold on `intent`."""
    spot = lot.spots.first()
    now = timezone.now()
    ids = []
    for i in range(n):
        start = now - timedelta(days=400) + timedelta(hours=3 * i)
        reservation = Reservation.objects.create(
            user=user,
            lot=lot,
            spot=spot,
            vehicle_type="car",
            start=start,
            end=start + timedelta(hours=1),
            occupied_until=start + timedelta(hours=1),
            status=Status.COMPLETED,
            price_amount=300,
            hourly_amount=300,
            daily_max_amount=2400,
            currency="usd",
            amount_due=300,
            settlement=Settlement.PENDING,
            settlement_next_at=now - timedelta(minutes=10),
        )
        Payment.objects.create(
            reference=payment_reference(reservation),
            user=user,
            amount=300,
            currency="usd",
            amount_authorised=300,
            status="authorised",
            payment_intent_id=intent,
        )
        ids.append(reservation.pk)
    return ids


def test_failures_that_retrying_cannot_cure_stop_and_never_starve_the_rest(
    stripe, one_spot_lot, driver
):
    broken = _unsettled(one_spot_lot, driver, 200, intent="pi_does_not_exist")
    assert reservations_settle_pending(limit=200) == 0
    assert Reservation.objects.filter(pk__in=broken, settlement=Settlement.ATTENTION).count() == 200
    # A reservation that can settle is settled by the very next sweep.
    start = timezone.now() + timedelta(minutes=1)
    good = _paid(stripe, one_spot_lot, UserFactory(), start=start, hours=1)
    Reservation.objects.filter(pk=good.pk).update(
        status=Status.COMPLETED,
        amount_due=300,
        settlement=Settlement.PENDING,
        settlement_next_at=timezone.now(),
    )
    assert reservations_settle_pending(limit=200) == 1
    assert Reservation.objects.get(pk=good.pk).settlement == Settlement.SETTLED
    assert stripe.kept(_payment(good).payment_intent_id) == 300


def test_failures_stripe_may_cure_back_off_and_never_starve_the_rest(
    stripe, one_spot_lot, driver, settings
):
    real = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # unreachable
    waiting = _unsettled(one_spot_lot, driver, 200, intent="pi_unreachable")
    assert reservations_settle_pending(limit=200) == 0
    rows = Reservation.objects.filter(pk__in=waiting)
    assert rows.filter(settlement=Settlement.PENDING, settlement_attempts=1).count() == 200
    assert not rows.filter(settlement_next_at__lte=timezone.now()).exists()  # backing off

    settings.STRIPE_API_BASE = real
    start = timezone.now() + timedelta(minutes=1)
    good = _paid(stripe, one_spot_lot, UserFactory(), start=start, hours=1)
    Reservation.objects.filter(pk=good.pk).update(
        status=Status.COMPLETED,
        amount_due=300,
        settlement=Settlement.PENDING,
        settlement_next_at=timezone.now(),
    )
    assert reservations_settle_pending(limit=200) == 1
    assert Reservation.objects.get(pk=good.pk).settlement == Settlement.SETTLED


def test_an_overstay_is_priced_at_the_rate_in_force_when_the_booking_was_made(
    stripe, one_spot_lot, driver
):
    start = timezone.now() + timedelta(minutes=1)
    reservation = _paid(stripe, one_spot_lot, driver, start=start, hours=2)
    reservation_arrive(reservation_id=reservation.pk, at=start)
    rate_set(lot=one_spot_lot, vehicle_type="car", hourly_amount=1000, daily_max_amount=9000)
    one_spot_lot.rates.all().delete()  # and then the lot stops taking cars altogether

    left = reservation.end + timedelta(minutes=90)  # two started hours over
    with time_machine.travel(left):
        done = reservation_depart(reservation_id=reservation.pk, at=left).reservation
    assert done.overstay_amount == 600
    assert _payment(reservation, "overstay").amount_captured == 600


@pytest.mark.postgres
def test_paying_while_the_driver_cancels_never_keeps_money_and_says_what_happened(
    stripe, one_spot_lot, driver
):
    """Complete and cancel race; whichever wins, the answers say what really
    happened and no money is held for a cancelled booking. Every other round,
    the cancel comes while Stripe is authorising the card."""
    outcomes = []
    for round_ in range(12):
        mid_payment = round_ % 2 == 1
        start = timezone.now() + timedelta(days=1, hours=3 * round_)
        reservation = book(driver, one_spot_lot, start=start)
        card = stripe.card()
        barrier = threading.Barrier(2)
        results: dict[str, object] = {}
        reference = payment_reference(reservation)

        def pay(reservation_id=reservation.pk, card=card, barrier=barrier, results=results):
            barrier.wait()
            try:
                results["pay"] = reservation_complete(
                    reservation_id=reservation_id, payment_method_id=card
                ).status
            except ApplicationError as exc:
                results["pay"] = exc.code
            finally:
                connections.close_all()

        def cancel(
            reservation_id=reservation.pk,
            reference=reference,
            barrier=barrier,
            results=results,
            wait=mid_payment,
        ):
            barrier.wait()
            while (
                wait
                and not Payment.objects.filter(reference=reference, operation="authorise").exists()
            ):
                if "pay" in results:  # paid before we saw it: cancel a confirmed one
                    break
            try:
                results["cancel"] = reservation_cancel(reservation_id=reservation_id).changed
            finally:
                connections.close_all()

        threads = [threading.Thread(target=pay), threading.Thread(target=cancel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        reservation.refresh_from_db()
        assert reservation.status == Status.CANCELLED
        assert results["pay"] in ("confirmed", "reservation_cancelled"), results
        payment = Payment.objects.filter(reference=payment_reference(reservation)).first()
        if mid_payment and results["pay"] == "reservation_cancelled":
            assert payment.payment_intent_id  # authorised, then given back
        if payment is not None and payment.payment_intent_id:
            intent = stripe.intent(payment.payment_intent_id)
            assert intent["status"] in ("canceled", "requires_payment_method"), intent["status"]
            assert stripe.kept(payment.payment_intent_id) == 0
        assert reservation.settlement == Settlement.SETTLED
        outcomes.append(results["pay"])
    assert "hold_expired" not in outcomes
    assert "reservation_cancelled" in outcomes
