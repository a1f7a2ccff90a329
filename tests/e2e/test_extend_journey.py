"""Extending a booking from the pass, in headless Chromium against a live server
and localstripe, on a desktop and on a phone: book, pay, extend (the price shown
before confirming, the saved card used), see the new end and price on the pass.
axe-core finds no serious issue; screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from playwright.sync_api import expect

from payments.models import Payment
from reservations.models import Reservation, Status
from tests.e2e.conftest import screenshot
from tests.e2e.test_website_journeys import (
    GOOD_CARD,
    check_accessibility,
    fill_card,
    log_in,
    tomorrow_at_the_lot,
)
from tests.factories import UserFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def payments(stripe, settings, localstripe_url):
    """Payments on, through localstripe, whose Stripe.js stand-in the pay page loads."""
    settings.STRIPE_JS_URL = f"{localstripe_url}/js.stripe.com/v3/"
    return stripe


@pytest.fixture(params=["desktop", "phone"])
def device(request):
    return request.param, request.getfixturevalue(
        "page" if request.param == "desktop" else "phone_page"
    )


def _book_and_pay(page, base: str, lot) -> Reservation:
    page.goto(
        f"{base}/lots/{lot.slug}/?vehicle_type=car&start={tomorrow_at_the_lot(lot, 10)}"
        f"&end={tomorrow_at_the_lot(lot, 12)}"
    )
    page.get_by_role("button", name="Reserve for €5.00").click()
    fill_card(page, GOOD_CARD)
    page.get_by_role("button", name="Pay €5.00").click()
    expect(page.get_by_role("heading", name="Your parking pass")).to_be_visible()
    return Reservation.objects.get(status=Status.CONFIRMED)


def test_extend_from_the_pass_see_the_price_then_the_new_end(
    live_server, lot, payments, device, driver
):
    kind, page = device
    base = live_server.url
    log_in(page, base, driver.email)
    reservation = _book_and_pay(page, base, lot)

    page.get_by_role("link", name="Extend").click()
    expect(page.get_by_role("heading", name="Extend your stay")).to_be_visible()
    page.get_by_label("New departure").fill(tomorrow_at_the_lot(lot, 14))
    page.get_by_role("button", name="See the price").click()

    quote = page.locator("#extension-quote")
    expect(quote).to_contain_text("€5.00 more.")
    expect(quote).to_contain_text("Your new total is €10.00.")
    expect(quote).to_contain_text("held on the card you paid with")
    assert not Payment.objects.filter(kind="extension").exists()  # nothing asked yet
    check_accessibility(page, f"extend-quote-{kind}")
    screenshot(page, f"extend-quote-{kind}")

    page.get_by_role("button", name="Extend for €5.00").click()

    expect(page.get_by_role("heading", name="Your parking pass")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(re.compile(r"Extended until .* 14:00"))
    expect(page.get_by_role("status")).to_contain_text("your new total is €10.00")
    facts = page.locator(".pass .facts")
    expect(facts).to_contain_text(re.compile(r"Leave by\s*.* 14:00"))
    expect(facts).to_contain_text("€10.00")
    # What is on the card: the booking's hold and the extension's.
    expect(page.locator("#payment-title + .facts")).to_contain_text(re.compile(r"On hold\s*€10.00"))
    check_accessibility(page, f"extended-pass-{kind}")
    screenshot(page, f"extended-pass-{kind}")

    reservation.refresh_from_db()
    local_end = reservation.end.astimezone(lot.tz)
    assert local_end.replace(tzinfo=None) == datetime.fromisoformat(tomorrow_at_the_lot(lot, 14))
    assert reservation.price_amount == 1000
    extension = Payment.objects.get(kind="extension")
    booking = Payment.objects.get(kind="booking")
    assert (extension.status, extension.amount) == ("authorised", 500)
    assert extension.payment_method_id == booking.payment_method_id  # the saved card


def test_a_spot_booked_after_the_end_is_explained_by_the_field(
    live_server, lot, payments, page, driver
):
    base = live_server.url
    log_in(page, base, driver.email)
    reservation = _book_and_pay(page, base, lot)
    other = UserFactory()
    for _ in range(3):  # every spot, the booked one too, taken right after the end
        book(other, lot, start=reservation.end, hours=1)

    page.get_by_role("link", name="Extend").click()
    page.get_by_label("New departure").fill(tomorrow_at_the_lot(lot, 13))
    page.get_by_role("button", name="See the price").click()

    errors = page.locator("#id_end_errors")
    expect(errors).to_contain_text(
        f"Spot {reservation.spot.label} is booked by someone else right after your departure"
    )
    expect(page.get_by_label("New departure")).to_have_attribute(
        "aria-describedby", re.compile("id_end_errors")
    )
    check_accessibility(page, "extend-refused-desktop")
    screenshot(page, "extend-refused-desktop")
    reservation.refresh_from_db()
    assert reservation.price_amount == 500
