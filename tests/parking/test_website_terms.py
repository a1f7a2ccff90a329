"""Every charge up front on the website: the lot page's quote, the pay page, the
pass and the e-mailed pass state the price line by line, what cancelling, not
showing up, leaving late and arriving early cost, with times that name their zone."""

from __future__ import annotations

import html as html_lib
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from reservations.emails import send_reservation_pass
from reservations.services import reservation_confirm
from tests.conftest import NOW
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)  # 10:00 in Paris (CET)


@pytest.fixture
def signed_in(client, driver):
    client.force_login(driver)
    return client


def text_of(response) -> str:
    """The page as a person reads it: tags gone, spaces collapsed."""
    body = response.content.decode()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def assert_every_charge_is_stated(text: str) -> None:
    for expected in (
        "2 h × €2.50 = €5.00",
        "Free until Thu 5 Mar 2026, 10:00 CET.",
        "€5.00 (the first 24 hours) if you have not arrived by Thu 5 Mar 2026, 11:00 CET",
        "60 min after your start",
        "€2.50 for each started hour after your end, at most €20.00 a day, charged separately",
        "The gate lets you in from Thu 5 Mar 2026, 09:45 CET (15 min before your start)",
        "After your reservation starts, cancelling costs the no-show charge of €5.00",
    ):
        assert expected in text, expected


def test_the_lot_pages_quote_states_every_charge_before_reserving(client, lot, frozen_now):
    response = client.get(
        f"/lots/{lot.slug}/?vehicle_type=car&start=2026-03-05T10:00&end=2026-03-05T12:00"
    )
    assert response.status_code == 200
    assert_every_charge_is_stated(text_of(response))


def test_the_live_quote_states_every_charge_too(client, lot, frozen_now):
    response = client.get(
        f"/lots/{lot.slug}/quote/?vehicle_type=car&start=2026-03-05T10:00&end=2026-03-05T12:00",
        HTTP_HX_REQUEST="true",
    )
    assert_every_charge_is_stated(text_of(response))


def test_a_long_stay_is_broken_down_into_capped_days_and_hours(client, lot, frozen_now):
    response = client.get(
        f"/lots/{lot.slug}/?vehicle_type=car&start=2026-03-05T10:00&end=2026-03-07T13:00"
    )
    text = text_of(response)
    assert "48 h at the daily maximum: 2 days × €20.00 = €40.00" in text
    assert "3 h × €2.50 = €7.50" in text
    assert "€20.00 (the first 24 hours)" in text


def test_the_pay_page_states_every_charge_before_paying(signed_in, driver, lot, frozen_now):
    reservation = book(driver, lot, start=START)
    text = text_of(signed_in.get(f"/reservations/{reservation.code}/pay/"))
    assert "What you agree to by paying" in text
    assert_every_charge_is_stated(text)


def test_the_hold_deadline_names_the_lots_time_zone(signed_in, driver, lot, frozen_now):
    reservation = book(driver, lot, start=START)
    deadline = "11:15 CET"  # NOW is 11:00 in Paris; holds last 15 minutes
    assert f"(until {deadline})" in text_of(signed_in.get(f"/reservations/{reservation.code}/pay/"))
    assert f"held until {deadline}" in text_of(signed_in.get(f"/reservations/{reservation.code}/"))
    assert f"held until {deadline}" in text_of(signed_in.get("/reservations/"))


def test_for_a_window_already_started_the_pay_page_says_what_cancelling_costs(
    signed_in, driver, lot, frozen_now
):
    reservation = book(driver, lot, start=NOW - timedelta(minutes=3), hours=3)
    text = text_of(signed_in.get(f"/reservations/{reservation.code}/pay/"))
    assert "Your reservation time has already started: cancelling after paying costs €7.50." in text
    assert "Free until" not in text


def test_a_long_booking_says_once_when_the_card_is_charged(
    signed_in, driver, lot, frozen_now, settings
):
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_parkspot"  # the card form shows
    reservation = book(driver, lot, start=START, hours=24 * 8)
    text = text_of(signed_in.get(f"/reservations/{reservation.code}/pay/"))
    assert "When you press Pay, your card is charged €160.00 at once" in text
    assert "Until then nothing is charged." in text
    # It once said "Your card is charged now; … Nothing has been charged yet."
    assert "Nothing has been charged yet" not in text
    assert "charged now" not in text


def test_the_pass_states_the_terms(signed_in, driver, lot, frozen_now):
    reservation = book(driver, lot, start=START)
    reservation_confirm(reservation_id=reservation.pk)
    text = text_of(signed_in.get(f"/reservations/{reservation.code}/"))
    assert "Your terms" in text
    assert_every_charge_is_stated(text)


def test_the_emailed_pass_states_the_terms(driver, lot, frozen_now):
    reservation = book(driver, lot, start=START)
    reservation_confirm(reservation_id=reservation.pk)
    mail.outbox.clear()
    send_reservation_pass(reservation_id=reservation.pk)

    message = mail.outbox[-1]
    text = " ".join(message.body.split())
    html = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", message.alternatives[0][0])).split())
    for body in (text, html):
        for expected in (
            "2 h × €2.50 = €5.00",
            "ree until Thu 5 Mar 2026, 10:00 CET.",
            "€5.00 (the first 24 hours) if you have not arrived by Thu 5 Mar 2026, 11:00 CET",
            "€2.50 for each started hour after 12:00 CET, at most €20.00 a day",
            "Thu 5 Mar 2026, 09:45 CET",
        ):
            assert expected in body, (expected, body)
