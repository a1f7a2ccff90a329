"""Receipts: once a reservation is settled, what it cost — each charge and each
refund as its payments recorded them — on the website, in the API and by
e-mail, sent once however often settlement runs. Real localstripe throughout."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from payments.models import Payment
from reservations.models import Reservation, ReservationNotice, Settlement
from reservations.selectors import reservation_receipt
from reservations.services import (
    payment_reference,
    reservation_arrive,
    reservation_cancel,
    reservation_complete,
    reservation_depart,
    reservation_extend,
    reservation_mark_no_show,
    reservation_receipt_queue,
    reservation_refund,
    reservations_settle_pending,
)
from tests.factories import UserFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db(transaction=True)


def _paid(stripe, lot, user, *, start, hours=2) -> Reservation:
    reservation = book(user, lot, start=start, hours=hours, vehicle_plate="AB-123-CD")
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())
    reservation.refresh_from_db()
    return reservation


def _receipts() -> list:
    return [m for m in mail.outbox if m.subject.startswith("Receipt:")]


@pytest.fixture
def stay(stripe, lot, driver) -> Reservation:
    """Parked two hours (€5.00), extended by one (€2.50), left 30 minutes late
    (one started hour of overstay, €2.50): settled."""
    start = timezone.now() + timedelta(minutes=1)
    reservation = _paid(stripe, lot, driver, start=start)
    reservation_arrive(reservation_id=reservation.pk, at=start)
    reservation_extend(reservation_id=reservation.pk, end=start + timedelta(hours=3))
    reservation_depart(reservation_id=reservation.pk, at=start + timedelta(hours=3, minutes=30))
    reservation.refresh_from_db()
    assert reservation.settlement == Settlement.SETTLED
    return reservation


def test_a_receipt_lists_parking_extension_and_overstay_from_the_payments(stay):
    receipt = reservation_receipt(stay)

    assert [(line.kind, line.label, line.amount) for line in receipt.lines] == [
        ("parking", "Parking", 500),
        ("extension", "Extension 1", 250),
        ("overstay", "Overstay", 250),
    ]
    recorded = Payment.objects.filter(reference__startswith=payment_reference(stay))
    assert receipt.total == sum(p.amount_captured - p.amount_refunded for p in recorded) == 1000


def test_the_receipt_is_e_mailed_once_when_settlement_finishes(stay, lot, settings):
    assert len(_receipts()) == 1
    message = _receipts()[0]
    assert message.to == [stay.user.email]
    assert message.subject == f"Receipt: reservation {stay.code} – {lot.name}, €10.00"
    for expected in (
        stay.code,
        lot.name,
        lot.address,
        "AB123CD",
        "Parking",
        "Extension 1",
        "Overstay",
        "€5.00",
        "€2.50",
        "Total paid",
        "€10.00",
    ):
        assert expected in message.body, expected
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert "€10.00" in html
    assert f"/reservations/{stay.code}/receipt/" in message.body

    # The sweep running again, or twice at once, and a reopened settlement: no second one.
    reservations_settle_pending(now=timezone.now() + timedelta(hours=2))
    assert reservation_receipt_queue(reservation_id=stay.pk) is False
    assert len(_receipts()) == 1
    assert ReservationNotice.objects.filter(reservation=stay, kind="receipt").count() == 1


def test_a_no_show_receipt_shows_only_the_no_show_charge(stripe, lot, driver):
    start = timezone.now() - timedelta(minutes=2)
    reservation = _paid(stripe, lot, driver, start=start, hours=30)  # €20 for 24 h + €15
    reservation_mark_no_show(reservation_id=reservation.pk, at=start + timedelta(hours=2))
    reservation.refresh_from_db()

    receipt = reservation_receipt(reservation)

    assert [(line.kind, line.amount) for line in receipt.lines] == [("no_show", 2000)]
    assert "No-show charge" in _receipts()[0].body


def test_a_booking_charged_when_booked_and_cancelled_free_shows_the_charge_and_its_refund(
    stripe, lot, driver, settings
):
    settings.CARD_HOLD_MAX_DAYS = 0  # every booking is charged at once
    reservation = _paid(stripe, lot, driver, start=timezone.now() + timedelta(days=2))
    reservation_cancel(reservation_id=reservation.pk)
    reservation.refresh_from_db()

    receipt = reservation_receipt(reservation)

    assert [(line.kind, line.amount) for line in receipt.lines] == [
        ("parking", 500),
        ("refund", -500),
    ]
    assert (receipt.charged, receipt.refunded, receipt.total) == (500, 500, 0)


def test_a_free_cancellation_of_a_hold_has_an_empty_receipt_and_no_receipt_e_mail(
    stripe, lot, driver
):
    reservation = _paid(stripe, lot, driver, start=timezone.now() + timedelta(days=2))
    reservation_cancel(reservation_id=reservation.pk)
    reservation.refresh_from_db()

    assert reservation_receipt(reservation).lines == []
    assert _receipts() == []


def test_a_staff_refund_after_settlement_shows_on_the_receipt_and_is_e_mailed(stay):
    reservation_refund(reservation_id=stay.pk, amount=250, actor_user=None, reason="gate jam")

    receipt = reservation_receipt(stay)
    assert ("refund", -250) in [(line.kind, line.amount) for line in receipt.lines]
    assert receipt.total == 750
    refund_mail = [m for m in mail.outbox if m.subject.startswith("Refund of €2.50")]
    assert len(refund_mail) == 1
    assert f"/reservations/{stay.code}/receipt/" in refund_mail[0].body


def test_the_receipt_page_shows_the_lines_the_lot_and_the_plate(stay, client, lot):
    client.force_login(stay.user)
    html = client.get(f"/reservations/{stay.code}/receipt/").content.decode()
    for expected in (
        "Parking",
        "Extension 1",
        "Overstay",
        "€10.00",
        lot.name,
        lot.address,
        "AB123CD",
    ):
        assert expected in html, expected
    # linked from the reservation
    assert (
        f"/reservations/{stay.code}/receipt/"
        in client.get(f"/reservations/{stay.code}/").content.decode()
    )


def test_the_receipt_is_the_drivers_own_and_only_once_settled(stay, client, stripe, lot):
    client.force_login(UserFactory())
    assert client.get(f"/reservations/{stay.code}/receipt/").status_code == 404

    client.force_login(stay.user)
    unsettled = _paid(stripe, lot, stay.user, start=timezone.now() + timedelta(days=2))
    assert client.get(f"/reservations/{unsettled.code}/receipt/").status_code == 404


def test_the_receipt_api_gives_lines_and_totals_as_money(stay, lot, stripe):
    api = APIClient()
    api.force_authenticate(stay.user)

    body = api.get(f"/api/v1/reservations/{stay.code}/receipt").json()

    assert body["reservation_id"] == stay.code
    assert body["lot"] == {
        "id": lot.slug,
        "name": lot.name,
        "address": lot.address,
        "city": lot.city,
    }
    assert body["vehicle_plate"] == "AB123CD"
    assert [(line["kind"], line["amount"]) for line in body["lines"]] == [
        ("parking", {"amount": 500, "currency": "eur"}),
        ("extension", {"amount": 250, "currency": "eur"}),
        ("overstay", {"amount": 250, "currency": "eur"}),
    ]
    assert body["total"] == {"amount": 1000, "currency": "eur"}
    assert body["refunded"] == {"amount": 0, "currency": "eur"}

    unsettled = _paid(stripe, lot, stay.user, start=timezone.now() + timedelta(days=2))
    response = api.get(f"/api/v1/reservations/{unsettled.code}/receipt")
    assert response.status_code == 404
    assert response.json()["code"] == "receipt_not_ready"

    other = APIClient()
    other.force_authenticate(UserFactory())
    response = other.get(f"/api/v1/reservations/{stay.code}/receipt")
    assert response.status_code == 404
    assert response.json()["code"] == "reservation_not_found"
