"""Paying for a reservation through the API, against a real localstripe."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from payments.models import Payment
from reservations.models import Reservation, Status
from tests.stripe_support import DECLINED_CARD

pytestmark = pytest.mark.django_db(transaction=True)


def _reserve(client, lot, *, hours_ahead: float = 1, hours: float = 3) -> dict:
    start = timezone.now() + timedelta(hours=hours_ahead)
    response = client.post(
        "/api/v1/reservations",
        {
            "lot_id": lot.slug,
            "vehicle_type": "car",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=hours)).isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def _complete(client, reservation: dict, token: str):
    return client.post(
        f"/api/v1/reservations/{reservation['id']}/complete",
        {"payment_token": token},
        format="json",
    )


def test_a_booking_holds_the_spot_without_calling_stripe(stripe, driver_api, lot):
    body = _reserve(driver_api, lot)
    payment = body["payment"]
    assert payment["status"] == "requires_payment_method"
    assert payment["client_secret"] is None
    assert payment["publishable_key"] == "pk_test_parkspot"
    assert (payment["amount_authorised"], payment["amount_captured"]) == (0, 0)
    # Nor does reading it: Stripe has heard nothing until the driver pays.
    assert driver_api.get(f"/api/v1/reservations/{body['id']}").status_code == 200
    assert not Payment.objects.exists()
    assert stripe.client.v1.customers.list().data == []
    assert stripe.intents() == []


def test_paying_with_a_good_card_confirms_and_holds_the_price_on_the_card(stripe, driver_api, lot):
    reserved = _reserve(driver_api, lot, hours=3)
    response = _complete(driver_api, reserved, stripe.card())

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "confirmed"
    assert body["payment"]["status"] == "authorised"
    assert body["payment"]["amount_authorised"] == reserved["price"]["amount"] == 750
    assert body["payment"]["client_secret"] is None
    payment = Payment.objects.get()
    intent = stripe.intent(payment.payment_intent_id)
    assert intent["status"] == "requires_capture"
    assert intent["amount"] == 750
    assert intent["capture_method"] == "manual"


def test_a_declined_card_is_402_and_the_spot_stays_held_for_another_card(stripe, driver_api, lot):
    reserved = _reserve(driver_api, lot)

    declined = _complete(driver_api, reserved, stripe.card(DECLINED_CARD))
    assert declined.status_code == 402
    assert declined.json()["code"] == "payment_declined"
    assert "declined" in declined.json()["detail"].lower()
    assert Reservation.objects.get().status == Status.PENDING_PAYMENT

    retried = _complete(driver_api, reserved, stripe.card())
    assert retried.status_code == 200
    assert retried.json()["status"] == "confirmed"
    assert retried.json()["payment"]["amount_authorised"] == 750


def test_paying_twice_returns_the_same_reservation_and_authorises_once(stripe, driver_api, lot):
    reserved = _reserve(driver_api, lot)
    first = _complete(driver_api, reserved, stripe.card())
    again = _complete(driver_api, reserved, stripe.card())
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert len(stripe.intents()) == 1


def test_two_concurrent_payments_authorise_once(stripe, driver, lot):
    client = APIClient()
    client.force_authenticate(driver)
    reserved = _reserve(client, lot)
    cards = [stripe.card(), stripe.card()]
    barrier = threading.Barrier(2)
    statuses: list[tuple[int, str]] = []

    def pay(card: str) -> None:
        own = APIClient()
        own.force_authenticate(driver)
        try:
            barrier.wait(timeout=10)
            response = _complete(own, reserved, card)
            statuses.append((response.status_code, response.json().get("code", "")))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=pay, args=(card,)) for card in cards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert (200, "") in statuses
    assert set(statuses) <= {(200, ""), (409, "payment_in_progress")}
    assert len(stripe.intents()) == 1
    assert Reservation.objects.get().status == Status.CONFIRMED


def test_paying_after_the_hold_lapsed_is_409_and_charges_nothing(stripe, driver_api, lot):
    reserved = _reserve(driver_api, lot)
    card = stripe.card()
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        response = _complete(driver_api, reserved, card)
    assert response.status_code == 409
    assert response.json()["code"] == "hold_expired"
    assert stripe.intents() == []
    assert Reservation.objects.get().status == Status.EXPIRED


def test_a_bad_payment_token_is_a_clear_4xx(stripe, driver_api, lot):
    reserved = _reserve(driver_api, lot)
    not_a_card = _complete(driver_api, reserved, "tok_visa")
    assert not_a_card.status_code == 400
    assert not_a_card.json()["code"] == "invalid_payment_token"
    unknown = _complete(driver_api, reserved, "pm_doesnotexist")
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "invalid_payment_token"
    assert Reservation.objects.get().status == Status.PENDING_PAYMENT


def test_someone_elses_reservation_cannot_be_paid(stripe, driver_api, lot):
    reserved = _reserve(driver_api, lot)
    stranger = APIClient()
    from tests.factories import UserFactory

    stranger.force_authenticate(UserFactory())
    response = _complete(stranger, reserved, stripe.card())
    assert response.status_code == 404
    assert stripe.intents() == []


def test_cancelling_before_the_start_releases_the_hold(stripe, driver_api, lot):
    reserved = _reserve(driver_api, lot)
    _complete(driver_api, reserved, stripe.card())

    response = driver_api.post(f"/api/v1/reservations/{reserved['id']}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["payment"]["status"] == "canceled"
    assert response.json()["payment"]["amount_captured"] == 0
    payment = Payment.objects.get()
    assert stripe.intent(payment.payment_intent_id)["status"] == "canceled"


def test_cancelling_after_the_start_charges_the_full_price_by_default(stripe, driver_api, lot):
    reserved = _reserve(driver_api, lot, hours_ahead=0.5)
    _complete(driver_api, reserved, stripe.card())
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        response = driver_api.post(f"/api/v1/reservations/{reserved['id']}/cancel")
    assert response.json()["payment"]["amount_captured"] == 750
    assert stripe.kept(Payment.objects.get().payment_intent_id) == 750


def test_the_late_cancel_policy_can_refund_everything(stripe, driver_api, lot, settings):
    settings.LATE_CANCEL_POLICY = "refund"
    reserved = _reserve(driver_api, lot, hours_ahead=0.5)
    _complete(driver_api, reserved, stripe.card())
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        response = driver_api.post(f"/api/v1/reservations/{reserved['id']}/cancel")
    assert response.json()["payment"]["status"] == "canceled"
    assert stripe.kept(Payment.objects.get().payment_intent_id) == 0


def test_a_reservation_ending_beyond_card_hold_life_is_charged_at_once(stripe, driver_api, lot):
    # Card holds lapse after about a week: this one is settled by refunds.
    reserved = _reserve(driver_api, lot, hours_ahead=24 * 10)
    body = _complete(driver_api, reserved, stripe.card()).json()

    assert body["status"] == "confirmed"
    assert body["payment"]["capture_mode"] == "immediate"
    assert body["payment"]["amount_captured"] == 750
    payment = Payment.objects.get()
    assert stripe.intent(payment.payment_intent_id)["status"] == "succeeded"

    cancelled = driver_api.post(f"/api/v1/reservations/{reserved['id']}/cancel").json()
    assert cancelled["payment"]["amount_refunded"] == 750
    assert stripe.kept(payment.payment_intent_id) == 0


def test_paying_e_mails_the_pass_once(stripe, driver_api, lot, mailoutbox):
    reserved = _reserve(driver_api, lot)
    _complete(driver_api, reserved, stripe.card())
    _complete(driver_api, reserved, stripe.card())  # a retried request

    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == [Reservation.objects.get().user.email]
    assert reserved["id"] in message.subject + message.body
