"""The booking website in headless Chromium against a live server and localstripe.

A driver signs up (opening the account from the link e-mailed), searches,
reserves, pays with a test card, sees the pass and cancels, on a desktop and on
a phone; a declined card is explained and another card then works; the lot
page's quote is live; the main pages pass axe-core with no serious or critical
violation. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from reservations.models import Reservation, Status
from reservations.services import reservation_confirm
from tests.e2e.conftest import screenshot
from tests.parking.signup_links import confirm_path
from tests.reservations.helpers import book
from tests.stripe_support import DECLINED_CARD, GOOD_CARD

pytestmark = pytest.mark.django_db(transaction=True)

AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
PASSWORD = "correct horse battery"


@pytest.fixture
def payments(stripe, settings, localstripe_url):
    """Payments on, through localstripe, whose Stripe.js stand-in the pay page loads."""
    settings.STRIPE_JS_URL = f"{localstripe_url}/js.stripe.com/v3/"
    return stripe


@pytest.fixture(params=["desktop", "phone"])
def device(request) -> tuple[str, Page]:
    fixture = "page" if request.param == "desktop" else "phone_page"
    return request.param, request.getfixturevalue(fixture)


def tomorrow_at_the_lot(lot, hour: int) -> str:
    day = (timezone.now().astimezone(lot.tz) + timedelta(days=1)).date()
    return f"{day.isoformat()}T{hour:02d}:00"


def log_in(page: Page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def fill_card(page: Page, number: str) -> None:
    """Type a card into the card field (localstripe's stand-in of Stripe Elements)."""
    card = page.locator("#card-element")
    card.get_by_label("Card number").fill(number)
    card.get_by_label("Expiry month (MM)").fill("12")
    card.get_by_label("Expiry year (YY)").fill("34")
    card.get_by_label("Security code (CVC)").fill("123")
    card.get_by_label("Postal code").fill("75009")


def check_accessibility(page: Page, name: str) -> None:
    """axe-core in the page: no serious or critical violation."""
    # Evaluated through the browser's DevTools protocol: a <script> tag would be inline
    # code, which the Content-Security-Policy refuses.
    page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    serious = [
        {
            "id": violation["id"],
            "impact": violation["impact"],
            "help": violation["help"],
            "nodes": [node["target"] for node in violation["nodes"]][:5],
        }
        for violation in result["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{name}: {json.dumps(serious, indent=2)}"


def test_sign_up_search_reserve_pay_see_the_pass_and_cancel(live_server, lot, payments, device):
    kind, page = device
    base = live_server.url

    page.goto(base + "/")
    expect(page).to_have_title("Reserve a parking spot · ParkSpot")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("E-mail address").fill(f"new-{kind}@example.com")
    page.get_by_label("Password").fill("a long enough passphrase")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
    # The link in the e-mail opens the account (the live server runs in this process).
    page.goto(base + confirm_path(f"new-{kind}@example.com"))
    page.get_by_role("button", name="Open my account and log in").click()
    expect(page.get_by_role("status")).to_contain_text("Welcome to ParkSpot!")

    # Search: the lot's city, a car, tomorrow 10:00-12:00 at the lot.
    search = page.get_by_role("search", name="Find parking")
    search.get_by_label("City").select_option(lot.city)
    search.get_by_label("Vehicle").select_option("car")
    search.get_by_label("Arrival").fill(tomorrow_at_the_lot(lot, 10))
    search.get_by_label("Departure").fill(tomorrow_at_the_lot(lot, 12))
    search.get_by_role("button", name="Find a spot").click()
    expect(
        page.get_by_role("heading", name=re.compile("1 car park with a free car spot"))
    ).to_be_visible()
    expect(page.get_by_text("€5.00")).to_be_visible()
    screenshot(page, f"journey-search-{kind}")

    # The results' Reserve books at once (tests/e2e/test_terms_journeys.py); the
    # lot's name opens its page with the searched window, to change it.
    page.get_by_role("link", name=lot.name, exact=True).click()
    expect(page.get_by_role("heading", name=lot.name)).to_be_visible()
    reserve = page.get_by_role("button", name="Reserve for €5.00")
    expect(reserve).to_be_visible()

    # The quote follows the times without reloading the page (htmx).
    page.evaluate("window.__samePage = true")
    page.get_by_label("Departure").fill(tomorrow_at_the_lot(lot, 13))
    page.get_by_label("Departure").dispatch_event("change")
    expect(page.get_by_role("button", name="Reserve for €7.50")).to_be_visible()
    assert page.evaluate("window.__samePage") is True
    screenshot(page, f"journey-lot-{kind}")

    page.get_by_role("button", name="Reserve for €7.50").click()
    expect(page.get_by_role("heading", name="Pay and confirm")).to_be_visible()
    expect(page.locator("[data-countdown-value]")).to_have_text(re.compile(r"^1[45]:\d\d$"))
    fill_card(page, GOOD_CARD)
    screenshot(page, f"journey-pay-{kind}")
    page.get_by_role("button", name="Pay €7.50").click()

    expect(page.get_by_role("heading", name="Your parking pass")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Paid — your spot is booked.")
    reservation = Reservation.objects.get(user__email=f"new-{kind}@example.com")
    assert reservation.status == Status.CONFIRMED
    expect(
        page.get_by_role("img", name=f"QR code of reservation {reservation.code}")
    ).to_be_visible()
    expect(page.locator(".pass-code")).to_contain_text(reservation.code)
    screenshot(page, f"journey-pass-{kind}")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="My reservations").click()
    expect(page.get_by_text(reservation.code)).to_be_visible()
    page.get_by_role("link", name=f"Show pass {reservation.code}").click()
    page.get_by_role("link", name="Cancel reservation").click()
    expect(page.locator("#cancel-terms")).to_contain_text("Cancelling now is free.")
    screenshot(page, f"journey-cancel-{kind}")
    page.get_by_role("button", name="Yes, cancel reservation").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Reservation {reservation.code} is cancelled."
    )
    expect(page.locator(".badge").first).to_have_text("Cancelled")
    reservation.refresh_from_db()
    assert reservation.status == Status.CANCELLED


def test_a_declined_card_is_explained_and_another_card_works(
    live_server, lot, payments, page, driver
):
    base = live_server.url
    log_in(page, base, driver.email)
    page.goto(
        f"{base}/lots/{lot.slug}/?vehicle_type=car&start={tomorrow_at_the_lot(lot, 9)}"
        f"&end={tomorrow_at_the_lot(lot, 10)}"
    )
    page.get_by_role("button", name="Reserve for €2.50").click()

    fill_card(page, DECLINED_CARD)
    page.get_by_role("button", name="Pay €2.50").click()
    alert = page.locator("#pay-error")
    expect(alert).to_contain_text("Your card was declined. Nothing was charged. Try another card.")
    expect(page.locator("[data-countdown-value]")).to_be_visible()  # still held
    screenshot(page, "journey-declined-desktop")
    assert Reservation.objects.get(user=driver).status == Status.PENDING_PAYMENT

    fill_card(page, GOOD_CARD)
    page.get_by_role("button", name="Pay €2.50").click()
    expect(page.get_by_role("heading", name="Your parking pass")).to_be_visible()
    assert Reservation.objects.get(user=driver).status == Status.CONFIRMED


def test_card_errors_from_stripe_js_stay_on_the_page(live_server, lot, payments, page, driver):
    base = live_server.url
    log_in(page, base, driver.email)
    reservation = book(driver, lot, start=timezone.now() + timedelta(days=1))
    page.goto(f"{base}/reservations/{reservation.code}/pay/")
    fill_card(page, "4000000000000002")  # refused when the card is set up
    page.get_by_role("button", name=re.compile("^Pay ")).click()
    expect(page.locator("#card-errors")).to_contain_text("declined")
    expect(page.get_by_role("button", name=re.compile("^Pay "))).to_be_enabled()
    assert page.url.endswith(f"/reservations/{reservation.code}/pay/")


def test_main_pages_are_accessible_and_photographed(live_server, lot, payments, driver, device):
    kind, page = device
    base = live_server.url
    window = (
        f"vehicle_type=car&start={tomorrow_at_the_lot(lot, 10)}&end={tomorrow_at_the_lot(lot, 12)}"
    )

    visitor_pages = {
        "home": "/",
        "search": f"/search/?city={lot.city}&{window}",
        "lot": f"/lots/{lot.slug}/?{window}",
        "signup": "/accounts/signup/",
        "signup-sent": "/accounts/signup/sent/",
        "signup-bad-link": "/accounts/signup/confirm/not-a-link/",
        "login": "/accounts/login/",
        "password-reset": "/accounts/password-reset/",
        "not-found": "/no/such/page/",
    }
    for name, path in visitor_pages.items():
        page.goto(base + path)
        check_accessibility(page, name)
        screenshot(page, f"{name}-{kind}")

    log_in(page, base, driver.email)
    pending = book(driver, lot, start=timezone.now() + timedelta(days=1), hours=3)
    paid = book(driver, lot, start=timezone.now() + timedelta(days=2), vehicle_plate="AB-123-CD")
    reservation_confirm(reservation_id=paid.pk)
    driver_pages = {
        "pay": f"/reservations/{pending.code}/pay/",
        "pass": f"/reservations/{paid.code}/",
        "reservations": "/reservations/",
        "cancel": f"/reservations/{paid.code}/cancel/",
        "account": "/account/",
        "lot-signed-in": f"/lots/{lot.slug}/?{window}",
    }
    for name, path in driver_pages.items():
        page.goto(base + path)
        if name == "pay":
            expect(page.locator("#card-element input").first).to_be_visible()
        check_accessibility(page, name)
        screenshot(page, f"{name}-{kind}")


def test_the_phone_layout_does_not_scroll_sideways(live_server, lot, phone_page, driver):
    base = live_server.url
    window = (
        f"vehicle_type=car&start={tomorrow_at_the_lot(lot, 10)}&end={tomorrow_at_the_lot(lot, 12)}"
    )
    log_in(phone_page, base, driver.email)
    for path in (
        "/",
        f"/search/?{window}",
        f"/lots/{lot.slug}/?{window}",
        "/reservations/",
        "/account/",
    ):
        phone_page.goto(base + path)
        overflow = phone_page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} is {overflow}px too wide for a phone"


def test_the_site_works_from_the_keyboard(live_server, lot, page):
    page.goto(live_server.url + "/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    # Tab onwards from the main content: focus lands on the search form's first field.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('main') !== null")
