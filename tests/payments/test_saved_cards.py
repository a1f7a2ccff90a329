"""Saved cards: a card a booking was paid with is offered for the next one (pay
in one tap), can be listed and removed, and never used by another driver;
against a real localstripe."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from payments.models import Payment
from reservations.models import Reservation, Status
from reservations.services import reservation_arrive, reservation_depart
from tests.factories import UserFactory
from tests.payments.test_paying import _complete, _reserve
from tests.stripe_support import DECLINED_CARD

pytestmark = pytest.mark.django_db(transaction=True)


def _pay_once(client, lot, stripe, *, hours_ahead: float = 1) -> tuple[dict, str]:
    reserved = _reserve(client, lot, hours_ahead=hours_ahead, hours=2)
    card = stripe.card()
    response = _complete(client, reserved, card)
    assert response.status_code == 200, response.content
    return reserved, card


def test_a_driver_who_never_paid_has_no_saved_cards_and_stripe_is_not_asked(
    stripe, driver_api, lot
):
    response = driver_api.get("/api/v1/me/payment-methods")
    assert response.status_code == 200
    assert response.json() == []
    assert stripe.client.v1.customers.list().data == []


def test_the_card_a_booking_was_paid_with_is_listed_with_brand_last4_and_expiry(
    stripe, driver_api, lot
):
    _, card = _pay_once(driver_api, lot, stripe)
    response = driver_api.get("/api/v1/me/payment-methods")
    assert response.status_code == 200
    assert response.json() == [
        {"id": card, "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034}
    ]


def test_the_next_booking_pays_in_one_tap_with_a_saved_card(stripe, driver_api, lot):
    _, card = _pay_once(driver_api, lot, stripe, hours_ahead=1)
    saved = driver_api.get("/api/v1/me/payment-methods").json()[0]["id"]

    second = _reserve(driver_api, lot, hours_ahead=30, hours=2)
    response = _complete(driver_api, second, saved)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "confirmed"
    payment = Payment.objects.get(reference=f"reservation:{second['id']}")
    assert payment.payment_method_id == card
    assert payment.status == Payment.Status.AUTHORISED


def test_a_new_card_that_was_declined_is_not_kept_for_next_time(stripe, driver_api, lot):
    reserved = _reserve(driver_api, lot, hours_ahead=1, hours=2)
    declined = stripe.card(DECLINED_CARD)
    assert _complete(driver_api, reserved, declined).status_code == 402

    paid = _complete(driver_api, reserved, stripe.card())

    assert paid.status_code == 200
    listed = [card["last4"] for card in driver_api.get("/api/v1/me/payment-methods").json()]
    assert listed == ["4242"]
    assert stripe.client.v1.payment_methods.retrieve(declined)["customer"] is None


def test_another_drivers_saved_card_is_refused_with_a_code_and_nothing_is_charged(
    stripe, driver_api, lot
):
    _, card = _pay_once(driver_api, lot, stripe)
    thief = APIClient()
    thief.force_authenticate(UserFactory())
    theirs = _reserve(thief, lot, hours_ahead=1, hours=2)

    response = _complete(thief, theirs, card)

    assert response.status_code == 400
    assert response.json()["code"] == "payment_method_not_yours"
    payment = Payment.objects.get(reference=f"reservation:{theirs['id']}")
    assert payment.status == Payment.Status.REQUIRES_PAYMENT_METHOD
    assert payment.amount_authorised == 0
    assert payment.payment_method_id == ""  # no trace of the other driver's card
    assert Reservation.objects.get(code=theirs["id"]).status == Status.PENDING_PAYMENT
    # and the thief can still pay with a card of their own
    assert _complete(thief, theirs, stripe.card()).status_code == 200


def test_removing_a_saved_card_detaches_it_and_it_is_no_longer_offered(stripe, driver_api, lot):
    reserved, card = _pay_once(driver_api, lot, stripe)
    reservation = Reservation.objects.get(code=reserved["id"])
    reservation_arrive(reservation_id=reservation.pk, at=reservation.start)
    reservation_depart(reservation_id=reservation.pk, at=reservation.start + timedelta(hours=1))
    reservation.refresh_from_db()
    assert reservation.settlement == "settled"

    response = driver_api.delete(f"/api/v1/me/payment-methods/{card}")

    assert response.status_code == 204
    assert driver_api.get("/api/v1/me/payment-methods").json() == []
    assert stripe.client.v1.payment_methods.retrieve(card)["customer"] is None


def test_a_card_an_unsettled_booking_is_paid_with_cannot_be_removed(stripe, driver_api, lot):
    _, card = _pay_once(driver_api, lot, stripe)

    response = driver_api.delete(f"/api/v1/me/payment-methods/{card}")

    assert response.status_code == 409
    assert response.json()["code"] == "card_in_use"
    assert len(driver_api.get("/api/v1/me/payment-methods").json()) == 1


def test_another_drivers_card_cannot_be_removed(stripe, driver_api, lot):
    _, card = _pay_once(driver_api, lot, stripe)
    other = APIClient()
    other.force_authenticate(UserFactory())
    _pay_once(other, lot, stripe)

    for target in (card, "pm_nonexistent", "not-a-card", "pm_%00", "pm_" + "x" * 300):
        response = other.delete(f"/api/v1/me/payment-methods/{target}")
        assert response.status_code == 404, target
        assert response.json()["code"] == "payment_method_not_found"
    assert stripe.client.v1.payment_methods.retrieve(card)["customer"]


def test_saved_cards_need_a_logged_in_driver(api):
    assert api.get("/api/v1/me/payment-methods").status_code == 401
    assert api.delete("/api/v1/me/payment-methods/pm_x").status_code == 401
