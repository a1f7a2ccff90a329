"""Pay in one tap and the receipt, in headless Chromium against a live server
and localstripe, on a desktop and on a phone: the first booking is paid with a
new card (saved to the account), the next one with a tap on that saved card;
the account page lists it; a settled booking's receipt shows every charge.
axe-core finds no serious issue; screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from payments.models import Payment
from reservations.models import Reservation, Status
from reservations.services import reservation_arrive, reservation_complete, reservation_depart
from tests.e2e.conftest import screenshot
from tests.e2e.test_website_journeys import (
    GOOD_CARD,
    check_accessibility,
    fill_card,
    log_in,
    tomorrow_at_the_lot,
)
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


def _reserve(page, base: str, lot, start_hour: int, end_hour: int) -> None:
    page.goto(
        f"{base}/lots/{lot.slug}/?vehicle_type=car&start={tomorrow_at_the_lot(lot, start_hour)}"
        f"&end={tomorrow_at_the_lot(lot, end_hour)}"
    )
    price = (end_hour - start_hour) * 250 / 100
    page.get_by_role("button", name=f"Reserve for €{price:.2f}").click()


def test_pay_once_with_a_new_card_then_the_next_booking_in_one_tap(
    live_server, lot, payments, device, driver
):
    kind, page = device
    base = live_server.url
    log_in(page, base, driver.email)

    # First booking: no saved card yet, the card form; it says the card is saved.
    _reserve(page, base, lot, 10, 12)
    expect(page.locator("#card-choice")).to_have_count(0)
    expect(page.locator("#card-saved-note")).to_contain_text("saved to your account")
    fill_card(page, GOOD_CARD)
    page.get_by_role("button", name="Pay €5.00").click()
    expect(page.get_by_role("heading", name="Your parking pass")).to_be_visible()
    first = Payment.objects.get(kind="booking")

    # Next booking: the saved card is offered, chosen already; one tap pays.
    _reserve(page, base, lot, 14, 17)
    choice = page.get_by_role("group", name="Pay with")
    saved = choice.get_by_role("radio", name=re.compile(r"Visa ending 4242"))
    expect(saved).to_be_checked()
    expect(page.locator("#new-card")).to_be_hidden()
    check_accessibility(page, f"pay-saved-card-{kind}")
    screenshot(page, f"pay-saved-card-{kind}")
    # "A new card" brings the card form back, and the saved card hides it again.
    choice.get_by_role("radio", name="A new card").check()
    expect(page.locator("#new-card")).to_be_visible()
    saved.check()
    expect(page.locator("#new-card")).to_be_hidden()

    page.get_by_role("button", name="Pay €7.50").click()

    expect(page.get_by_role("heading", name="Your parking pass")).to_be_visible()
    second = Reservation.objects.exclude(pk=Reservation.objects.order_by("pk").first().pk).get()
    assert second.status == Status.CONFIRMED
    assert Payment.objects.get(reference=f"reservation:{second.code}").payment_method_id == (
        first.payment_method_id
    )

    # The account page lists the card, with a way to remove it.
    page.goto(f"{base}/account/")
    cards = page.locator("section", has=page.get_by_role("heading", name="Saved cards"))
    expect(cards).to_contain_text("Visa ending 4242")
    expect(cards).to_contain_text("expires 12/2034")
    expect(cards.get_by_role("button", name="Remove Visa ending 4242")).to_be_visible()
    check_accessibility(page, f"account-saved-cards-{kind}")
    screenshot(page, f"account-saved-cards-{kind}")


def test_a_settled_booking_has_a_receipt_linked_from_the_reservation(
    live_server, lot, payments, device, driver
):
    kind, page = device
    base = live_server.url
    start = timezone.now() + timedelta(minutes=1)
    reservation = book(driver, lot, start=start, hours=2, vehicle_plate="AB-123-CD")
    reservation_complete(reservation_id=reservation.pk, payment_method_id=payments.card())
    reservation_arrive(reservation_id=reservation.pk, at=start)
    reservation_depart(reservation_id=reservation.pk, at=start + timedelta(hours=2, minutes=20))

    log_in(page, base, driver.email)
    page.goto(f"{base}/reservations/{reservation.code}/")
    page.get_by_role("link", name="Your receipt").click()

    expect(page.get_by_role("heading", name="Receipt", exact=True)).to_be_visible()
    table = page.get_by_role("table", name="What you paid")
    expect(table.get_by_role("row", name=re.compile(r"Parking\s+€5\.00"))).to_be_visible()
    expect(table.get_by_role("row", name=re.compile(r"Overstay\s+€2\.50"))).to_be_visible()
    expect(page.locator("#receipt-total")).to_have_text("€7.50")
    expect(page.locator("main")).to_contain_text(lot.address)
    expect(page.locator("main")).to_contain_text("AB123CD")
    check_accessibility(page, f"receipt-{kind}")
    screenshot(page, f"receipt-{kind}")
