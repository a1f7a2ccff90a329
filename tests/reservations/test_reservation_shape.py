"""The API's reservation, built by hand for speed, is ReservationSerializer's
shape in every state (the serializer is what the OpenAPI schema documents)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings

from payments.models import Payment
from reservations.api import ReservationSerializer, reservation_data
from reservations.models import Reservation, Settlement, Status
from tests.factories import SpotFactory
from tests.reservations.helpers import book


def serialized(reservation: Reservation, payment: Payment | None) -> dict:
    payments = {reservation.pk: payment} if payment else {}
    return dict(ReservationSerializer(reservation, context={"payments": payments}).data)


def a_payment(reservation: Reservation, **fields) -> Payment:
    return Payment.objects.create(
        reference=f"reservation:{reservation.code}",
        user=reservation.user,
        currency=reservation.currency,
        amount=reservation.price_amount,
        **fields,
    )


@pytest.mark.parametrize("publishable_key", ["pk_test_x", ""])
def test_a_new_booking_renders_as_the_serializer_does(driver, lot, frozen_now, publishable_key):
    reservation = book(driver, lot, vehicle_plate="ab-123-cd")
    with override_settings(STRIPE_PUBLISHABLE_KEY=publishable_key):
        assert reservation_data(reservation, payment=None) == serialized(reservation, None)


def test_every_later_state_renders_as_the_serializer_does(driver, lot, frozen_now):
    reservation = book(driver, lot, hours=3)
    payment = a_payment(
        reservation,
        status=Payment.Status.AUTHORISED,
        amount_authorised=reservation.price_amount,
        capture_mode=Payment.CaptureMode.MANUAL,
    )
    reservation.refresh_from_db()
    states = [
        {"status": Status.CONFIRMED, "hold_expires_at": None},
        {"status": Status.PARKED, "arrived_at": reservation.start + timedelta(minutes=5)},
        {
            "status": Status.COMPLETED,
            "departed_at": reservation.end + timedelta(minutes=45),
            "occupied_until": reservation.end + timedelta(minutes=45),
            "overstay_amount": 450,
            "amount_due": reservation.price_amount + 450,
            "settlement": Settlement.SETTLED,
        },
        {"status": Status.CANCELLED, "amount_due": 0, "occupied_until": reservation.end},
    ]
    for changes in states:
        for name, value in changes.items():
            setattr(reservation, name, value)
        reservation.save()
        reservation = Reservation.objects.select_related("lot", "spot").get(pk=reservation.pk)
        for shown in (payment, None):
            assert reservation_data(reservation, payment=shown) == serialized(reservation, shown)


def test_the_payment_is_looked_up_when_not_given(driver, lot, frozen_now):
    reservation = book(driver, lot)
    payment = a_payment(reservation, status=Payment.Status.REQUIRES_PAYMENT_METHOD)

    assert reservation_data(reservation)["payment"]["status"] == payment.status
    assert reservation_data(reservation) == serialized(reservation, payment)


def test_a_booking_with_spot_features_renders_as_the_serializer_does(driver, lot, frozen_now):
    SpotFactory(lot=lot, label="E-1", has_ev_charging=True, is_covered=True, max_height_cm=210)
    reservation = book(driver, lot, features=["ev_charging"], vehicle_height_cm=200)

    shown = reservation_data(reservation, payment=None)

    assert shown == serialized(reservation, None)
    assert shown["spot"]["features"] == ["ev_charging", "covered"]
    assert (shown["spot"]["max_height_cm"], shown["vehicle_height_cm"]) == (210, 200)
    assert shown["requested_features"] == ["ev_charging"]
