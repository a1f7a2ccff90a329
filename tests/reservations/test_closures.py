"""Closures (issue #15): lot staff close a whole lot, or some of its spots, for a
while. New bookings there are refused (`lot_closed`) or sent elsewhere; the
bookings already there are moved to the best free spot of their type, or
cancelled with everything given back; a car already parked stays and is listed
for the staff; lifting the closure opens it again."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from lots.models import Spot
from parking.services import api_token_create
from payments.models import Payment
from reservations.attention import lot_attention
from reservations.models import ClosureImpact, Reservation, Status
from reservations.services import (
    payment_reference,
    reservation_arrive,
    reservation_complete,
    reservation_confirm,
    reservation_extend,
)
from reservations.services.closures import closure_create, closure_lift
from tests.conftest import NOW
from tests.factories import UserFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = timedelta(hours=1)
# The closure of most tests: tomorrow 08:00-18:00 UTC.
CLOSED_FROM = NOW + timedelta(hours=22)
CLOSED_UNTIL = CLOSED_FROM + 10 * HOUR


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _spot(lot, label: str) -> Spot:
    return Spot.objects.get(lot=lot, label=label)


def _close(lot, *labels: str, starts_at=CLOSED_FROM, ends_at=CLOSED_UNTIL, staff=None):
    return closure_create(
        lot_id=lot.pk,
        starts_at=starts_at,
        ends_at=ends_at,
        reason="maintenance",
        spot_ids=[_spot(lot, label).pk for label in labels],
        actor_user=staff,
    )


def _bearer(user) -> APIClient:
    """A client on the lean booking path (a real bearer token)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user).token}")
    return client


def _body(lot, start, hours: float = 2) -> dict:
    return {
        "lot_id": lot.slug,
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + hours * HOUR).isoformat(),
    }


def _availability(client, lot, start, hours: float = 2) -> dict:
    answer = client.get(
        f"/api/v1/lots/{lot.slug}/availability",
        {
            "vehicle_type": "car",
            "start": start.isoformat(),
            "end": (start + hours * HOUR).isoformat(),
        },
    )
    assert answer.status_code == 200, answer.content
    return answer.json()


def test_a_booking_into_a_closed_lot_is_refused_with_lot_closed_on_both_paths(clock, lot, driver):
    _close(lot)
    lean = _bearer(driver).post(
        "/api/v1/reservations", _body(lot, CLOSED_FROM + HOUR), format="json"
    )
    drf = _bearer(driver).post(
        "/api/v1/reservations",
        _body(lot, CLOSED_FROM - HOUR),  # begins before, runs into the closure
        format="json",
        HTTP_ACCEPT="application/json; q=0.9",
    )
    assert not hasattr(lean, "data")
    assert hasattr(drf, "data")
    for answer in (lean, drf):
        assert answer.status_code == 409, answer.content
        assert answer.json()["code"] == "lot_closed"
        # When it opens again (the lot's local time) and why.
        assert "2026-03-05T19:00:00+01:00" in answer.json()["detail"]
        assert "maintenance" in answer.json()["detail"]
    assert not Reservation.objects.exists()
    # Back to back with the closure is fine.
    after = _bearer(driver).post("/api/v1/reservations", _body(lot, CLOSED_UNTIL), format="json")
    assert after.status_code == 201, after.content
    assert _availability(APIClient(), lot, CLOSED_FROM)["free_spots"] == 0


def test_closed_spots_are_not_offered_and_availability_counts_them_out(clock, lot, driver):
    client = APIClient()
    assert _availability(client, lot, CLOSED_FROM)["free_spots"] == 3
    _close(lot, "C-001", "C-002")
    assert _availability(client, lot, CLOSED_FROM)["free_spots"] == 1  # the cache ended
    assert _availability(client, lot, CLOSED_UNTIL)["free_spots"] == 3  # after it
    booked = book(driver, lot, start=CLOSED_FROM)
    assert booked.spot.label == "C-003"
    # Nothing else is free: the usual answer, the lot itself is open.
    again = _bearer(driver).post("/api/v1/reservations", _body(lot, CLOSED_FROM), format="json")
    assert (again.status_code, again.json()["code"]) == (409, "no_spot_available")


def _put(lot, label: str, start, hours: float, user=None) -> Reservation:
    """A confirmed booking on a spot of our choosing."""
    return Reservation.objects.create(
        user=user or UserFactory(),
        lot=lot,
        spot=_spot(lot, label),
        vehicle_type="car",
        start=start,
        end=start + hours * HOUR,
        occupied_until=start + hours * HOUR,
        status=Status.CONFIRMED,
        price_amount=500,
        currency="eur",
    )


def test_a_closure_moves_a_booking_in_its_way_to_the_best_fitting_free_spot(clock, lot, driver):
    staff = UserFactory(is_staff=True)
    in_the_way = _put(lot, "C-001", CLOSED_FROM, 2, user=driver)
    # C-003 is busy right up to the booking's start, C-002 until 3 hours before:
    # C-003 leaves the smaller gap, so it fits best (by label, C-002 would come first).
    _put(lot, "C-002", CLOSED_FROM - 5 * HOUR, 2)
    _put(lot, "C-003", CLOSED_FROM - 2 * HOUR, 2)
    result = _close(lot, "C-001", staff=staff)

    in_the_way.refresh_from_db()
    assert (in_the_way.status, in_the_way.spot.label) == (Status.CONFIRMED, "C-003")
    [impact] = result.impacts
    assert (impact.outcome, impact.from_spot.label, impact.to_spot.label) == (
        "moved",
        "C-001",
        "C-003",
    )
    assert ClosureImpact.objects.get().reservation == in_the_way
    event = in_the_way.events.last()
    assert event.data["moved_from"] == "C-001"
    assert event.data["moved_to"] == "C-003"
    assert event.actor_user == staff
    # The driver's pass shows the new spot; an e-mail says so.
    seen = _bearer(driver).get(f"/api/v1/reservations/{in_the_way.code}")
    assert seen.json()["spot"]["label"] == "C-003"
    assert [m.to for m in mail.outbox] == [[driver.email]]
    assert "C-003" in mail.outbox[0].subject
    assert "spot C-001 is closed during your reservation (maintenance)" in mail.outbox[0].body


def test_a_booking_with_nowhere_to_go_is_cancelled_refunded_in_full_and_listed(
    clock, lot, driver, stripe
):
    booking = book(driver, lot, start=CLOSED_FROM + HOUR, vehicle_plate="AB-123-CD")
    reservation_complete(reservation_id=booking.pk, payment_method_id=stripe.card())
    payment = Payment.objects.get(reference=payment_reference(booking))
    assert (payment.status, payment.amount_authorised) == ("authorised", 500)
    mail.outbox.clear()

    result = _close(lot)

    assert [i.outcome for i in result.impacts] == ["cancelled"]
    booking.refresh_from_db()
    assert (booking.status, booking.amount_due) == (Status.CANCELLED, 0)
    assert booking.events.last().data["reason"] == "displaced_by_closure"
    # Nothing charged: the hold is released, in our records and in Stripe's.
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("canceled", 0)
    assert stripe.kept(payment.payment_intent_id) == 0
    assert [m.to for m in mail.outbox] == [[driver.email]]
    assert booking.code in mail.outbox[0].subject
    assert "pay nothing" in mail.outbox[0].body
    body = " ".join(mail.outbox[0].body.split())
    assert "is closed during your reservation (maintenance)" in body
    assert "has not left" not in body
    assert lot_attention(lot=lot).displaced == [booking]


def test_a_car_parked_in_a_closed_spot_is_listed_not_cancelled(clock, lot, driver):
    parked = book(driver, lot, start=NOW, hours=4)
    reservation_confirm(reservation_id=parked.pk)
    reservation_arrive(reservation_id=parked.pk, at=NOW)

    result = _close(lot, parked.spot.label, starts_at=NOW + HOUR, ends_at=NOW + 5 * HOUR)

    parked.refresh_from_db()
    assert (parked.status, parked.spot.label) == (Status.PARKED, "C-001")
    [impact] = result.impacts
    assert (impact.outcome, impact.reservation) == ("parked", parked)
    assert parked.events.last().data["car_in_closed_spot"] == "C-001"


def test_lifting_a_closure_opens_its_spots_again(clock, lot, driver):
    result = _close(lot)
    assert _availability(APIClient(), lot, CLOSED_FROM)["free_spots"] == 0
    assert closure_lift(closure_id=result.closure.pk) is True
    assert closure_lift(closure_id=result.closure.pk) is False  # already lifted
    assert _availability(APIClient(), lot, CLOSED_FROM)["free_spots"] == 3
    assert book(driver, lot, start=CLOSED_FROM).status == Status.PENDING_PAYMENT


def test_a_booking_cannot_be_extended_into_a_closure(clock, lot, driver, stripe):
    booking = book(driver, lot, start=CLOSED_FROM - 3 * HOUR, hours=2)
    reservation_complete(reservation_id=booking.pk, payment_method_id=stripe.card())
    _close(lot, booking.spot.label)
    answer = _bearer(driver).post(
        f"/api/v1/reservations/{booking.code}/extend",
        {"end": (CLOSED_FROM + HOUR).isoformat()},
        format="json",
    )
    assert (answer.status_code, answer.json()["code"]) == (409, "lot_closed")
    booking.refresh_from_db()
    assert booking.end == CLOSED_FROM - HOUR
    # Up to the closure is fine.
    extended = reservation_extend(reservation_id=booking.pk, end=CLOSED_FROM, actor_user=driver)
    assert extended.reservation.end == CLOSED_FROM


@pytest.mark.parametrize(
    ("starts", "ends", "code"),
    [
        (CLOSED_UNTIL, CLOSED_FROM, "invalid_window"),
        (NOW - 3 * HOUR, NOW - HOUR, "closure_in_past"),
    ],
)
def test_a_closure_that_ends_before_it_starts_or_is_over_is_refused(clock, lot, starts, ends, code):
    from config.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        _close(lot, starts_at=starts, ends_at=ends)
    assert refused.value.code == code


def test_the_lot_page_shows_a_closure_to_come_until_it_is_over_or_lifted(clock, lot):
    page = APIClient().get(f"/lots/{lot.slug}/").content.decode()
    assert 'id="lot-closures"' not in page
    whole = _close(lot)
    _close(lot, "C-002", starts_at=CLOSED_UNTIL + HOUR, ends_at=CLOSED_UNTIL + 3 * HOUR)
    page = " ".join(APIClient().get(f"/lots/{lot.slug}/").content.decode().split())
    # In the lot's time (Paris, UTC+1).
    assert "Closed Thu 5 Mar 2026, 09:00 – 19:00: maintenance" in page
    assert "Spot C-002 closed Thu 5 Mar 2026, 20:00 – 22:00: maintenance" in page
    closure_lift(closure_id=whole.closure.pk)
    clock.move_to(CLOSED_UNTIL + 3 * HOUR)
    page = APIClient().get(f"/lots/{lot.slug}/").content.decode()
    assert 'id="lot-closures"' not in page


def test_a_booking_charged_at_once_is_refunded_in_full_when_a_closure_cancels_it(
    clock, lot, driver, stripe
):
    # Ending beyond a card hold's life, it was charged when paid for.
    far = NOW + timedelta(days=10)
    booking = book(driver, lot, start=far)
    reservation_complete(reservation_id=booking.pk, payment_method_id=stripe.card())
    payment = Payment.objects.get(reference=payment_reference(booking))
    assert (payment.status, payment.amount_captured) == ("captured", 500)

    _close(lot, starts_at=far - HOUR, ends_at=far + 3 * HOUR)

    booking.refresh_from_db()
    assert (booking.status, booking.settlement) == (Status.CANCELLED, "settled")
    payment.refresh_from_db()
    assert payment.amount_refunded == 500
    assert stripe.kept(payment.payment_intent_id) == 0


def test_the_website_says_the_lot_is_closed_when_booking_into_it(clock, lot, driver):
    _close(lot)  # Thu 5 Mar 09:00-19:00 Paris time
    browser = Client()
    browser.force_login(driver)
    form = {
        "vehicle_type": "car",
        "start": "2026-03-05T10:00",
        "end": "2026-03-05T12:00",
        "idempotency_key": "form-1",
    }
    response = browser.post(f"/lots/{lot.slug}/reserve/", form)
    assert response.status_code == 409
    page = " ".join(response.content.decode().split())
    assert "is closed from 2026-03-05T09:00:00+01:00 until 2026-03-05T19:00:00+01:00" in page
    assert "(maintenance)" in page
    assert not Reservation.objects.exists()
