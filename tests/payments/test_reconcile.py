"""`manage.py reconcile_payments`: finds where our records and Stripe differ,
and with --fix brings ours forward."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from payments.models import Payment, PaymentAttempt
from payments.services import PaymentDeclined, payment_authorise, payment_settle
from reservations.services import payment_reference, reservation_complete, reservation_extend
from tests.reservations.helpers import book
from tests.stripe_support import DECLINED_CARD

pytestmark = pytest.mark.django_db(transaction=True)


def test_reconcile_reports_then_fixes_a_refund_made_at_stripe(stripe, lot, driver):
    reservation = book(driver, lot, start=timezone.now() + timedelta(hours=1), hours=2)
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())
    payment = Payment.objects.get(reference=payment_reference(reservation))
    stripe.client.v1.payment_intents.capture(payment.payment_intent_id)
    stripe.client.v1.refunds.create(
        params={"payment_intent": payment.payment_intent_id, "amount": 200}
    )

    report = StringIO()
    with pytest.raises(SystemExit) as exit_code:
        call_command("reconcile_payments", stdout=report)
    assert exit_code.value.code == 1
    assert f"{payment.reference} (booking) differs" in report.getvalue()
    payment.refresh_from_db()
    assert payment.status == "authorised"  # only reported

    fixed = StringIO()
    call_command("reconcile_payments", "--fix", stdout=fixed)
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured, payment.amount_refunded) == (
        "captured",
        500,
        200,
    )
    assert "fixed 1" in fixed.getvalue()

    clean = StringIO()
    call_command("reconcile_payments", stdout=clean)
    assert "differing 0" in clean.getvalue()


def test_reconcile_reports_then_cancels_a_declined_intent_left_open(stripe, stripe_proxy, driver):
    stripe_proxy.fail("POST", "/cancel")  # the decline handler cannot cancel it
    with pytest.raises(PaymentDeclined):
        payment_authorise(
            reference="test:rec-1",
            user=driver,
            amount=500,
            currency="eur",
            payment_method_id=stripe.card(DECLINED_CARD),
        )
    stripe_proxy.heal()
    attempt = PaymentAttempt.objects.get()

    report = StringIO()
    with pytest.raises(SystemExit):
        call_command("reconcile_payments", stdout=report)
    assert f"attempt {attempt.intent_id} differs: still open at Stripe" in report.getvalue()

    fixed = StringIO()
    call_command("reconcile_payments", "--fix", stdout=fixed)
    assert "fixed 1" in fixed.getvalue()
    assert stripe.intent(attempt.intent_id)["status"] == "canceled"
    attempt.refresh_from_db()
    assert attempt.canceled_at is not None

    clean = StringIO()
    call_command("reconcile_payments", stdout=clean)
    assert "differing 0" in clean.getvalue()


def test_reconcile_says_what_it_cannot_fix_and_fails(stripe, driver):
    payment = payment_authorise(
        reference="test:rec-2",
        user=driver,
        amount=1000,
        currency="eur",
        payment_method_id=stripe.card(),
        capture_later=False,
    )
    payment_settle(reference="test:rec-2", amount=0)  # refunded in full, by us
    # ...and again at Stripe (localstripe allows it): forward-only syncing
    # cannot count more than was captured, so the difference stays.
    stripe.client.v1.refunds.create(
        params={"payment_intent": payment.payment_intent_id, "amount": 1000}
    )

    report = StringIO()
    with pytest.raises(SystemExit):
        call_command("reconcile_payments", stdout=report)
    assert "test:rec-2 (booking) differs: Stripe kept -1000, we record 0" in report.getvalue()

    fixing = StringIO()
    with pytest.raises(SystemExit) as exit_code:
        call_command("reconcile_payments", "--fix", stdout=fixing)
    assert exit_code.value.code == 1
    assert "test:rec-2 (booking) cannot fix: Stripe kept -1000, we record 0" in fixing.getvalue()
    assert "fixed 0, unresolved 1" in fixing.getvalue()
    payment.refresh_from_db()
    assert (payment.amount_captured, payment.amount_refunded) == (1000, 1000)


def test_reconcile_of_a_bookings_reference_also_checks_its_extensions(stripe, lot, driver):
    reservation = book(driver, lot, start=timezone.now() + timedelta(hours=1), hours=2)
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())
    reservation_extend(reservation_id=reservation.pk, end=reservation.end + timedelta(hours=1))
    booking = payment_reference(reservation)
    extension = Payment.objects.get(reference__startswith=f"{booking}/")
    stripe.client.v1.payment_intents.cancel(extension.payment_intent_id)  # behind our back

    report = StringIO()
    with pytest.raises(SystemExit):
        call_command("reconcile_payments", "--reference", booking, stdout=report)
    assert f"{extension.reference} (extension) differs" in report.getvalue()
    assert "checked 2, differing 1" in report.getvalue()  # the booking agrees
