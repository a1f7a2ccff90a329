"""Lot staff see what needs them: settlements Stripe would not finish, cars
still in after their end, bookings cancelled because an overstaying car held
their spot; only for their lots, with the action that resolves a settlement."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from lots.models import LotStaff
from parking.management.commands.seed_demo import STAFF_PERMISSIONS
from parking.services import group_ensure
from reservations.models import Reservation, Settlement, Status
from reservations.services import (
    overstays_hold_spots,
    reservation_arrive,
    reservation_confirm,
)
from tests.factories import UserFactory
from tests.lots.test_staff_scoping import make_lot
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = reverse("admin:reservations_reservation_changelist")


@pytest.fixture
def lots():
    return make_lot("paris", "Europe/Paris", "eur"), make_lot("tokyo", "Asia/Tokyo", "jpy")


@pytest.fixture
def staff_of_paris(lots) -> Client:
    staff = UserFactory(email="staff@example.com", is_staff=True)
    staff.groups.add(group_ensure(name="Lot staff", permissions=STAFF_PERMISSIONS))
    LotStaff.objects.create(lot=lots[0], user=staff)
    client = Client()
    client.force_login(staff)
    return client


def _listed(client: Client, attention: str) -> set[str]:
    response = client.get(CHANGELIST, {"attention": attention})
    assert response.status_code == 200
    return {r.code for r in response.context["cl"].result_list}


def _parked_past_its_end(lot, driver) -> Reservation:
    start = timezone.now() - timedelta(minutes=3)
    reservation = book(driver, lot, start=start, hours=0.5)
    reservation_confirm(reservation_id=reservation.pk, at=start - timedelta(minutes=1))
    reservation_arrive(reservation_id=reservation.pk, at=start)
    Reservation.objects.filter(pk=reservation.pk).update(
        start=start - timedelta(hours=2),
        end=start - timedelta(minutes=30),
        occupied_until=start - timedelta(minutes=30),
    )
    return reservation


def test_staff_see_what_needs_them_in_their_lots_only(lots, staff_of_paris):
    paris, tokyo = lots
    driver = UserFactory()
    unsettled = book(driver, paris, start=timezone.now() + timedelta(hours=5))
    Reservation.objects.filter(pk=unsettled.pk).update(
        settlement=Settlement.ATTENTION, settlement_error="booking: capture refused"
    )
    elsewhere = book(driver, tokyo, start=timezone.now() + timedelta(hours=5))
    Reservation.objects.filter(pk=elsewhere.pk).update(settlement=Settlement.ATTENTION)
    still_in = _parked_past_its_end(paris, UserFactory())
    fine = book(UserFactory(), paris, start=timezone.now() + timedelta(hours=8))

    assert _listed(staff_of_paris, "settlement") == {unsettled.code}
    assert _listed(staff_of_paris, "parked") == {still_in.code}
    everything = _listed(staff_of_paris, "any")
    assert {unsettled.code, still_in.code} <= everything
    assert fine.code not in everything
    assert elsewhere.code not in everything

    page = staff_of_paris.get(reverse("admin:reservations_reservation_change", args=[unsettled.pk]))
    assert "Needs attention after 0 attempt(s): booking: capture refused" in page.content.decode()
    assert "Retry settlement" in page.content.decode()


def test_a_booking_cancelled_for_an_overstaying_car_is_listed_for_staff(lots, staff_of_paris):
    paris, _ = lots
    overstayer = _parked_past_its_end(paris, UserFactory())
    # Every other spot is taken, so the booking on the overstayer's spot cannot move.
    start = timezone.now() + timedelta(minutes=10)
    for spot in paris.spots.exclude(pk=overstayer.spot_id):
        Reservation.objects.create(
            user=UserFactory(),
            lot=paris,
            spot=spot,
            vehicle_type="car",
            start=start - timedelta(hours=1),
            end=start + timedelta(hours=3),
            occupied_until=start + timedelta(hours=3),
            status=Status.CONFIRMED,
            price_amount=1200,
            currency="eur",
        )
    unlucky = Reservation.objects.create(
        user=UserFactory(),
        lot=paris,
        spot_id=overstayer.spot_id,
        vehicle_type="car",
        start=start,
        end=start + timedelta(hours=2),
        occupied_until=start + timedelta(hours=2),
        status=Status.CONFIRMED,
        price_amount=600,
        hourly_amount=300,
        daily_max_amount=2000,
        currency="eur",
    )

    assert overstays_hold_spots() == 1
    unlucky.refresh_from_db()
    assert (unlucky.status, unlucky.amount_due) == (Status.CANCELLED, 0)
    assert unlucky.code in _listed(staff_of_paris, "displaced")
    assert unlucky.code in _listed(staff_of_paris, "any")


def test_lot_pages_link_to_what_needs_attention(lots, staff_of_paris):
    paris, _ = lots
    page = staff_of_paris.get(reverse("admin:lots_lot_change", args=[paris.pk]))
    assert f"?lot__id__exact={paris.pk}&amp;attention=any" in page.content.decode()
    assert reverse("admin:lots_lot_occupancy", args=[paris.pk]) in page.content.decode()
