"""Paying on the website against localstripe: the card form, a good card, a declined
one and a retry, a hold that lapses while paying, and cancelling paid bookings."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from payments.models import Payment
from reservations.models import Reservation, Status
from reservations.services import payment_reference
from tests.stripe_support import DECLINED_CARD, GOOD_CARD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def signed_in(client, driver):
    client.force_login(driver)
    return client


@pytest.fixture
def reservation(signed_in, driver, lot, stripe) -> Reservation:
    """Reserved through the website, two hours from the next hour."""
    start = (timezone.now() + timedelta(hours=2)).astimezone(lot.tz)
    response = signed_in.post(
        f"/lots/{lot.slug}/reserve/",
        {
            "vehicle_type": "car",
            "start": start.strftime("%Y-%m-%dT%H:%M"),
            "end": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
            "idempotency_key": "k",
        },
    )
    assert response.status_code == 302, response.content.decode()
    return Reservation.objects.get(user=driver)


def payment_of(reservation: Reservation) -> Payment:
    return Payment.objects.get(reference=payment_reference(reservation))


def test_the_pay_page_sets_up_stripe_js_without_asking_stripe_anything(
    signed_in, reservation, settings, stripe
):
    html = signed_in.get(f"/reservations/{reservation.code}/pay/").content.decode()
    # Viewing a page calls no payment service: the card becomes a PaymentMethod
    # in the browser, and the server calls Stripe only when the form is posted.
    assert not Payment.objects.exists()
    assert stripe.client.v1.customers.list().data == []
    assert 'data-publishable-key="pk_test_parkspot"' in html
    assert f'<script src="{settings.STRIPE_JS_URL}"></script>' in html
    assert "/static/js/pay.js" in html
    assert "Pay €5.00" in html
    assert "Test mode" in html


def test_a_good_card_confirms_and_shows_the_pass(signed_in, reservation, stripe):
    response = signed_in.post(
        f"/reservations/{reservation.code}/pay/", {"payment_method": stripe.card(GOOD_CARD)}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/reservations/{reservation.code}/"
    reservation.refresh_from_db()
    assert reservation.status == Status.CONFIRMED
    payment = payment_of(reservation)
    assert payment.status == Payment.Status.AUTHORISED
    assert stripe.intent(payment.payment_intent_id)["status"] == "requires_capture"

    html = signed_in.get(response["Location"]).content.decode()
    assert "Paid — your spot is booked." in html
    assert "Your parking pass" in html
    assert '<svg role="img"' in html
    assert "€5.00" in html
    assert "(charged when you leave)" in html


def test_a_declined_card_says_so_and_another_card_works(signed_in, reservation, stripe):
    response = signed_in.post(
        f"/reservations/{reservation.code}/pay/", {"payment_method": stripe.card(DECLINED_CARD)}
    )
    assert response.status_code == 303  # post/redirect/get: a reload posts nothing
    assert response["Location"] == f"/reservations/{reservation.code}/pay/"
    html = signed_in.get(response["Location"]).content.decode()
    assert "Your card was declined. Nothing was charged. Try another card." in html
    assert 'id="pay-form"' in html  # the card form again, with the same hold
    reservation.refresh_from_db()
    assert reservation.status == Status.PENDING_PAYMENT

    response = signed_in.post(
        f"/reservations/{reservation.code}/pay/", {"payment_method": stripe.card(GOOD_CARD)}
    )
    assert response.status_code == 302
    reservation.refresh_from_db()
    assert reservation.status == Status.CONFIRMED


def test_a_hold_that_lapsed_while_paying_charges_nothing(signed_in, reservation, stripe):
    card = stripe.card(GOOD_CARD)
    with time_machine.travel(timezone.now() + timedelta(minutes=16), tick=True):
        response = signed_in.post(
            f"/reservations/{reservation.code}/pay/", {"payment_method": card}
        )
    html = response.content.decode()
    assert "Your hold has run out" in html
    assert "Nothing was charged." in html
    reservation.refresh_from_db()
    # Lapsed (the scheduler marks it expired): the card was never charged.
    assert reservation.status in (Status.PENDING_PAYMENT, Status.EXPIRED)
    assert stripe.intents() == []


def test_a_forged_payment_method_is_refused_politely(signed_in, reservation):
    response = signed_in.post(
        f"/reservations/{reservation.code}/pay/", {"payment_method": "pm_doesnotexist"}
    )
    assert response.status_code == 303
    assert (
        "There is no such payment method." in signed_in.get(response["Location"]).content.decode()
    )


def test_reloading_after_a_declined_card_posts_nothing_again(signed_in, reservation, stripe):
    url = f"/reservations/{reservation.code}/pay/"
    declined = signed_in.post(url, {"payment_method": stripe.card(DECLINED_CARD)}, follow=True)
    assert declined.redirect_chain == [(url, 303)]
    assert "Your card was declined." in declined.content.decode()
    attempts = len(stripe.intents())

    # A reload is a GET of the same address: no second charge attempt, and the
    # refusal, shown once, is not shown again.
    reloaded = signed_in.get(url)
    assert reloaded.status_code == 200
    assert "Your card was declined." not in reloaded.content.decode()
    assert len(stripe.intents()) == attempts
    reservation.refresh_from_db()
    assert reservation.status == Status.PENDING_PAYMENT


def test_paying_is_protected_against_cross_site_requests(driver, reservation, stripe):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(driver)
    url = f"/reservations/{reservation.code}/pay/"
    card = stripe.card(GOOD_CARD)
    assert browser.post(url, {"payment_method": card}).status_code == 403
    token = re.search(
        r'name="csrfmiddlewaretoken" value="([^"]+)"', browser.get(url).content.decode()
    ).group(1)
    response = browser.post(url, {"payment_method": card, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    reservation.refresh_from_db()
    assert reservation.status == Status.CONFIRMED


def _pay(client, reservation, stripe) -> None:
    client.post(
        f"/reservations/{reservation.code}/pay/", {"payment_method": stripe.card(GOOD_CARD)}
    )
    reservation.refresh_from_db()
    assert reservation.status == Status.CONFIRMED


def test_cancelling_before_the_start_releases_the_hold(signed_in, reservation, stripe):
    _pay(signed_in, reservation, stripe)
    page = signed_in.get(f"/reservations/{reservation.code}/cancel/").content.decode()
    assert "the €5.00 hold on your card is released" in page

    signed_in.post(f"/reservations/{reservation.code}/cancel/")
    payment = payment_of(reservation)
    assert payment.status == Payment.Status.CANCELED
    assert stripe.intent(payment.payment_intent_id)["status"] == "canceled"
    html = signed_in.get("/reservations/").content.decode()
    assert "Cancelled" in html
    assert "nothing charged" in html


@pytest.mark.parametrize(("policy", "kept"), [("charge", 500), ("refund", 0)])
def test_cancelling_after_the_start_follows_the_policy(
    signed_in, reservation, stripe, settings, policy, kept
):
    settings.LATE_CANCEL_POLICY = policy
    _pay(signed_in, reservation, stripe)
    with time_machine.travel(reservation.start + timedelta(minutes=10), tick=True):
        page = signed_in.get(f"/reservations/{reservation.code}/cancel/").content.decode()
        expected = "Cancelling now costs €5.00." if kept else "Cancelling now is free."
        assert expected in page
        signed_in.post(f"/reservations/{reservation.code}/cancel/")
    payment = payment_of(reservation)
    assert payment.amount_captured - payment.amount_refunded == kept
    assert stripe.kept(payment.payment_intent_id) == kept
    detail = signed_in.get(f"/reservations/{reservation.code}/").content.decode()
    if kept:
        assert re.search(r"Charged</dt><dd>€5.00", detail)
    else:
        assert "Nothing charged" in detail
