"""Pay in one tap on the website: the pay page offers the cards saved on the
driver's account; the account page lists them and removes one; against localstripe."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from payments.models import Payment
from reservations.models import Reservation, Status
from reservations.services import payment_reference, reservation_arrive, reservation_depart
from tests.factories import UserFactory
from tests.parking.test_website_payments import _pay
from tests.reservations.helpers import book
from tests.stripe_support import DECLINED_CARD

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def signed_in(client, driver):
    client.force_login(driver)
    return client


@pytest.fixture
def reservation(driver, lot, stripe) -> Reservation:
    return book(driver, lot, start=timezone.now() + timedelta(hours=2))


def _second_booking(driver, lot) -> Reservation:
    return book(driver, lot, start=timezone.now() + timedelta(days=2))


def test_the_pay_page_offers_the_card_paid_with_before_and_a_new_card(
    signed_in, reservation, driver, lot, stripe
):
    _pay(signed_in, reservation, stripe)
    second = _second_booking(driver, lot)

    html = signed_in.get(f"/reservations/{second.code}/pay/").content.decode()

    card = payment_of_booking(reservation).payment_method_id
    assert f'name="card_choice" value="{card}" checked' in html
    assert "Visa ending 4242" in html
    assert "expires 12/2034" in html
    assert 'value="new"> <span>A new card</span>' in html


def test_a_first_time_driver_sees_only_the_card_form(signed_in, reservation, stripe):
    html = signed_in.get(f"/reservations/{reservation.code}/pay/").content.decode()
    assert "card_choice" not in html
    assert 'id="new-card"' in html
    assert 'id="new-card" hidden' not in html


def test_a_card_just_declined_is_not_offered_again_and_after_a_refusal_the_form_is_open(
    signed_in, reservation, driver, lot, stripe
):
    _pay(signed_in, reservation, stripe)  # a good card, saved
    second = _second_booking(driver, lot)
    declined = stripe.card(DECLINED_CARD)

    response = signed_in.post(f"/reservations/{second.code}/pay/", {"payment_method": declined})
    html = signed_in.get(response["Location"]).content.decode()

    assert "Your card was declined" in html
    assert declined not in html  # saved by the attempt, but no use for this booking
    good = payment_of_booking(reservation).payment_method_id
    assert f'name="card_choice" value="{good}">' in html  # offered, not chosen
    assert 'name="card_choice" value="new" checked' in html
    assert 'id="new-card" hidden' not in html


def test_paying_with_a_saved_card_confirms_in_one_post(signed_in, reservation, driver, lot, stripe):
    _pay(signed_in, reservation, stripe)
    card = payment_of_booking(reservation).payment_method_id
    second = _second_booking(driver, lot)

    response = signed_in.post(f"/reservations/{second.code}/pay/", {"card_choice": card})

    assert response.status_code == 302
    second.refresh_from_db()
    assert second.status == Status.CONFIRMED
    assert payment_of_booking(second).payment_method_id == card


def test_another_drivers_card_cannot_pay_on_the_website(
    signed_in, reservation, driver, lot, stripe, client
):
    _pay(signed_in, reservation, stripe)
    card = payment_of_booking(reservation).payment_method_id
    other = UserFactory()
    client.force_login(other)
    theirs = book(other, lot, start=timezone.now() + timedelta(days=2))

    response = client.post(f"/reservations/{theirs.code}/pay/", {"payment_method": card})

    assert response.status_code == 303
    page = client.get(response["Location"]).content.decode()
    assert "This card is not one of yours" in page
    theirs.refresh_from_db()
    assert theirs.status == Status.PENDING_PAYMENT


def test_the_account_page_lists_saved_cards_and_removes_one(signed_in, reservation, stripe):
    _pay(signed_in, reservation, stripe)
    card = payment_of_booking(reservation).payment_method_id

    html = signed_in.get("/account/").content.decode()
    assert "Visa ending 4242" in html
    assert f"/account/cards/{card}/remove/" in html

    # In use by a booking not settled yet: kept, and the driver is told why.
    response = signed_in.post(f"/account/cards/{card}/remove/", follow=True)
    assert "A booking that is not finished yet is paid with this card" in response.content.decode()
    assert stripe.client.v1.payment_methods.retrieve(card)["customer"]

    reservation_arrive(reservation_id=reservation.pk, at=reservation.start)
    reservation_depart(reservation_id=reservation.pk, at=reservation.start + timedelta(hours=1))
    response = signed_in.post(f"/account/cards/{card}/remove/", follow=True)
    html = response.content.decode()
    assert "The card is removed from your account." in html
    assert "No saved cards." in html
    assert stripe.client.v1.payment_methods.retrieve(card)["customer"] is None


def test_another_drivers_card_cannot_be_removed_on_the_website(
    signed_in, reservation, stripe, client
):
    _pay(signed_in, reservation, stripe)
    card = payment_of_booking(reservation).payment_method_id
    client.force_login(UserFactory())
    assert client.post(f"/account/cards/{card}/remove/").status_code == 404
    assert client.get(f"/account/cards/{card}/remove/").status_code == 405


def payment_of_booking(booking: Reservation) -> Payment:
    return Payment.objects.get(reference=payment_reference(booking), kind="booking")
