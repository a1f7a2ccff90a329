"""Extending a booking on the website: the pass offers it, the new departure is
chosen in the lot's local time, the price is shown before confirming, the saved
card pays, and refusals are said next to the field."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from payments.models import Payment
from reservations.models import Reservation, ReservationExtension
from reservations.services import reservation_complete
from tests.factories import UserFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def paid(client, driver, lot, stripe) -> Reservation:
    """A confirmed booking in Paris, 2 hours (€5.00), from the next whole hour on."""
    client.force_login(driver)
    start = (timezone.now() + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    reservation = book(driver, lot, start=start, hours=2)
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())
    reservation.refresh_from_db()
    return reservation


def _local(reservation, moment) -> str:
    return moment.astimezone(reservation.lot.tz).strftime("%Y-%m-%dT%H:%M")


def _text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_the_pass_offers_to_extend(client, paid):
    page = client.get(f"/reservations/{paid.code}/")
    assert "Need more time?" in _text(page)
    assert f'href="/reservations/{paid.code}/extend/"' in page.content.decode()


def test_the_price_is_shown_before_anything_is_charged_then_confirming_extends(client, paid):
    url = f"/reservations/{paid.code}/extend/"
    new_end = paid.end + timedelta(hours=2)

    form = client.get(url)
    assert f"Local time in {paid.lot.city} (Europe/Paris)" in _text(form)
    quoted = client.post(url, {"end": _local(paid, new_end), "quote": "1"})

    text = _text(quoted)
    local = new_end.astimezone(paid.lot.tz)
    assert f"Until {local:%a %-d %b %Y, %H:%M}: €5.00 more." in text
    assert "Your new total is €10.00." in text
    assert "held on the card you paid with" in text
    assert not Payment.objects.filter(kind="extension").exists()
    key = re.search(r'name="key" value="([0-9a-f]+)"', quoted.content.decode()).group(1)
    quoted_end = re.search(r'name="quoted" value="([^"]+)"', quoted.content.decode()).group(1)

    confirm = {"end": _local(paid, new_end), "key": key, "quoted": quoted_end, "confirm": "1"}
    done = client.post(url, confirm, follow=True)
    again = client.post(url, confirm)  # a double click, a reload

    assert done.redirect_chain[-1][0] == f"/reservations/{paid.code}/"
    assert f"Extended until {local:%a %-d %b %Y, %H:%M}" in _text(done)
    assert "your new total is €10.00" in _text(done)
    # The booking's hold and the extension's, added up.
    assert "On hold €10.00 (charged when you leave)" in _text(done)
    listed = _text(client.get("/reservations/"))
    assert "€10.00 · €10.00 on hold" in listed
    assert again.status_code == 302
    reservation = Reservation.objects.get(pk=paid.pk)
    assert (reservation.end, reservation.price_amount) == (new_end, 1000)
    assert ReservationExtension.objects.count() == 1
    assert Payment.objects.get(kind="extension").status == "authorised"


def test_confirming_another_time_than_the_one_priced_prices_it_first(client, paid):
    url = f"/reservations/{paid.code}/extend/"
    priced = _local(paid, paid.end + timedelta(hours=1))
    answer = client.post(
        url,
        {
            "end": _local(paid, paid.end + timedelta(hours=5)),
            "key": "abc",
            "quoted": priced,
            "confirm": "1",
        },
    )
    assert "€12.50 more." in _text(answer)  # priced, not extended
    assert Reservation.objects.get(pk=paid.pk).end == paid.end


def test_a_time_when_the_spot_is_booked_is_refused_next_to_the_field(client, paid, lot):
    other = UserFactory()
    for _ in range(3):
        book(other, lot, start=paid.end, hours=1)
    url = f"/reservations/{paid.code}/extend/"

    answer = client.post(url, {"end": _local(paid, paid.end + timedelta(hours=1)), "quote": "1"})

    assert (
        f"Spot {paid.spot.label} is booked by someone else right after your departure, "
        "so this booking cannot be extended." in _text(answer)
    )
    assert Reservation.objects.get(pk=paid.pk).end == paid.end


def test_the_latest_possible_departure_is_named_when_the_spot_is_booked_later(client, paid, lot):
    other = UserFactory()
    later = paid.end + timedelta(hours=2)
    for _ in range(3):
        book(other, lot, start=later, hours=1)
    url = f"/reservations/{paid.code}/extend/"

    answer = client.post(url, {"end": _local(paid, paid.end + timedelta(hours=3)), "quote": "1"})

    local = later.astimezone(lot.tz)
    assert (
        f"is booked by someone else from {local:%a %-d %b %Y, %H:%M} {local.tzname()}. "
        "Choose a departure at or before then." in _text(answer)
    )
    fits = client.post(url, {"end": _local(paid, later), "quote": "1"})
    assert "€5.00 more." in _text(fits)


def test_an_earlier_departure_is_refused_with_a_clear_message(client, paid):
    url = f"/reservations/{paid.code}/extend/"
    answer = client.post(url, {"end": _local(paid, paid.end - timedelta(hours=1)), "quote": "1"})
    assert "Choose a departure later than the one you have booked." in _text(answer)


def test_an_unpaid_booking_cannot_be_extended(client, driver, lot, stripe):
    client.force_login(driver)
    unpaid = book(driver, lot)
    assert "Need more time?" not in _text(client.get(f"/reservations/{unpaid.code}/"))
    answer = client.get(f"/reservations/{unpaid.code}/extend/", follow=True)
    assert "can no longer be extended" in _text(answer)


def test_another_drivers_booking_is_not_found(client, paid):
    client.force_login(UserFactory())
    assert client.get(f"/reservations/{paid.code}/extend/").status_code == 404
