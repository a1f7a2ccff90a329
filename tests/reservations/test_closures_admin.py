"""Closures in the admin: a lot's staff close it, or some of its spots, see what
that did to the bookings there, find it on the lot's "needs attention" page,
and lift it; another lot's closures they can neither see nor make."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from lots.models import LotStaff
from parking.management.commands.seed_demo import STAFF_PERMISSIONS
from parking.services import group_ensure
from reservations.models import Closure, Reservation, Status
from reservations.services import reservation_arrive, reservation_confirm
from tests.conftest import NOW
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = timedelta(hours=1)
ADD = reverse("admin:reservations_closure_add")


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _lot(slug: str, *labels: str):
    lot = LotFactory(slug=slug, name=slug.title(), timezone="Europe/Paris", currency="eur")
    RateFactory(lot=lot, vehicle_type="car", hourly_amount=250, daily_max_amount=2000)
    for label in labels:
        SpotFactory(lot=lot, label=label, vehicle_type="car")
    return lot


@pytest.fixture
def world(clock):
    lot_a = _lot("paris", "C-001", "C-002")
    lot_b = _lot("tokyo", "C-001")
    staff = UserFactory(email="staff.a@example.com", is_staff=True)
    staff.groups.add(group_ensure(name="Lot staff", permissions=STAFF_PERMISSIONS))
    LotStaff.objects.create(lot=lot_a, user=staff)
    client = Client()
    client.force_login(staff)
    return {"a": lot_a, "b": lot_b, "staff": staff, "client": client}


def _form(lot, *spots, start="2026-03-05T08:00", end="2026-03-05T18:00", reason="Resurfacing"):
    return {
        "lot": lot.pk,
        "spots": [spot.pk for spot in spots],
        "starts_at": start,
        "ends_at": end,
        "reason": reason,
    }


def test_staff_close_their_lot_and_see_what_happened_to_each_booking(world):
    lot, client = world["a"], world["client"]
    # 09:00-11:00 Paris time tomorrow, on the spot to be closed; the other is free.
    first = book(UserFactory(), lot, start=NOW + 22 * HOUR, hours=2)
    second = book(UserFactory(), lot, start=NOW + 22 * HOUR, hours=2)
    closed_spot = first.spot

    response = client.post(ADD, _form(lot, closed_spot), follow=True)

    assert response.status_code == 200
    closure = Closure.objects.get()
    # Read in the lot's time zone: 08:00 in Paris is 07:00 UTC.
    assert closure.starts_at == NOW.replace(day=5, hour=7)
    assert (closure.whole_lot, list(closure.spots.all())) == (False, [closed_spot])
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert "Bookings in its way: moved 0, cancelled 1, parked 0" in message
    page = response.content.decode()
    assert 'id="closure-impacts"' in page
    assert first.code in page
    assert "Cancelled, refunded in full" in page
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Status.CANCELLED
    assert second.status == Status.PENDING_PAYMENT
    # The lot's "needs attention" page lists the cancelled booking.
    attention = client.get(reverse("admin:lots_lot_attention", args=[lot.pk])).content.decode()
    assert first.code in attention
    listed = client.get(
        reverse("admin:reservations_reservation_changelist"),
        {"lot__id__exact": lot.pk, "attention": "any"},
    )
    assert list(listed.context["cl"].result_list) == [first]


def test_a_car_parked_in_a_closed_spot_is_on_the_attention_page(world):
    lot, client = world["a"], world["client"]
    parked = book(UserFactory(), lot, start=NOW, hours=6)
    reservation_confirm(reservation_id=parked.pk)
    reservation_arrive(reservation_id=parked.pk, at=NOW)
    form = _form(lot, parked.spot, start="2026-03-04T12:00", end="2026-03-04T14:00")
    response = client.post(ADD, form, follow=True)
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert "parked 1" in message
    attention = client.get(reverse("admin:lots_lot_attention", args=[lot.pk])).content.decode()
    assert 'id="closed-parked"' in attention
    assert parked.code in attention
    parked.refresh_from_db()
    assert parked.status == Status.PARKED
    # And in the reservations list, under "needs attention".
    listed = client.get(
        reverse("admin:reservations_reservation_changelist"),
        {"lot__id__exact": lot.pk, "attention": "closed"},
    )
    assert list(listed.context["cl"].result_list) == [parked]


def test_staff_cannot_close_another_lot_or_its_spots(world):
    client, lot_a, lot_b = world["client"], world["a"], world["b"]
    booking_b = book(UserFactory(), lot_b, start=NOW + 22 * HOUR, hours=2)

    answer = client.post(ADD, _form(lot_b))
    assert answer.status_code == 200
    assert "Select a valid choice" in answer.content.decode()
    answer = client.post(ADD, _form(lot_a, lot_b.spots.get()))
    assert answer.status_code == 200
    assert not Closure.objects.exists()
    booking_b.refresh_from_db()
    assert booking_b.status == Status.PENDING_PAYMENT
    # The form offers only their lot and its spots.
    page = client.get(ADD).content.decode()
    assert "Paris" in page
    assert "Tokyo" not in page


def test_a_closure_that_ends_before_it_starts_is_refused_on_the_form(world):
    answer = world["client"].post(
        ADD, _form(world["a"], start="2026-03-05T18:00", end="2026-03-05T08:00")
    )
    assert answer.status_code == 200
    assert "A closure ends after it starts." in answer.content.decode()
    assert not Closure.objects.exists()


def test_lifting_a_closure_from_the_list_reopens_the_lot(world):
    lot, client = world["a"], world["client"]
    client.post(ADD, _form(lot))
    closure = Closure.objects.get()
    start = NOW + 23 * HOUR
    body = {
        "lot_id": lot.slug,
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + HOUR).isoformat(),
    }
    driver = Client()
    driver.force_login(UserFactory())
    refused = driver.post("/api/v1/reservations", body, content_type="application/json")
    assert refused.json()["code"] == "lot_closed"
    client.post(
        reverse("admin:reservations_closure_changelist"),
        {"action": "lift_closures", "_selected_action": [closure.pk]},
    )
    closure.refresh_from_db()
    assert closure.lifted_at == NOW
    booked = driver.post("/api/v1/reservations", body, content_type="application/json")
    assert booked.status_code == 201
    assert Reservation.objects.get().status == Status.PENDING_PAYMENT
