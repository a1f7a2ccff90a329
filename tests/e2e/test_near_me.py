"""Finding a lot near you, by address, and its facts, in headless Chromium on a
desktop and a phone (issue #14).

The browser context is granted geolocation at a fixed position beside the Opéra:
"Near me" lists that lot first with its distance. Without the permission the
driver is told so and the address field takes over. The pages pass axe-core
with no serious or critical violation; screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
from datetime import time
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from lots.services import lot_facts_set
from tests.e2e.conftest import screenshot
from tests.e2e.test_website_journeys import check_accessibility, tomorrow_at_the_lot
from tests.factories import LotFactory, RateFactory, SpotFactory

pytestmark = pytest.mark.django_db(transaction=True)

HERE = {"latitude": 48.8722, "longitude": 2.3312}  # a few metres from the Opéra lot
DEVICES = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}


def parking(slug, name, address, lat, lng, city="Paris"):
    lot = LotFactory(
        slug=slug,
        name=name,
        address=address,
        city=city,
        timezone="Europe/Paris",
        currency="eur",
        latitude=Decimal(lat),
        longitude=Decimal(lng),
    )
    RateFactory(lot=lot, vehicle_type="car", hourly_amount=350, daily_max_amount=2800)
    for n in (1, 2):
        SpotFactory(lot=lot, label=f"C-{n:03}", vehicle_type="car")
    return lot


@pytest.fixture
def paris_lots(db):
    opera = parking("paris-opera", "Paris Opéra", "12 Rue Auber, 75009 Paris", "48.8721", "2.3310")
    lot_facts_set(
        lot=opera,
        height_limit_cm=190,
        entry_instructions="Drive in from Rue Auber; show your pass's QR code at the barrier.",
    )
    nord = parking("gare-du-nord", "Gare du Nord", "18 Rue de Dunkerque", "48.8809", "2.3553")
    lot_facts_set(lot=nord, opening_hours=[(day, time(6), time(0)) for day in range(7)])
    parking("versailles", "Château", "1 Place d'Armes", "48.8049", "2.1204", city="Versailles")
    return opera, nord


@pytest.fixture(params=list(DEVICES))
def located(request, browser):
    """A page whose browser may use its location, which is HERE."""
    context = browser.new_context(
        **DEVICES[request.param], geolocation=HERE, permissions=["geolocation"]
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield request.param, page
    context.close()


def test_near_me_lists_the_nearest_lot_first_then_address_search_and_lot_facts(
    live_server, paris_lots, located
):
    kind, page = located
    base = live_server.url
    page.goto(base + "/search/")
    search = page.get_by_role("search", name="Find parking")
    near_me = search.get_by_role("button", name="Near me")
    expect(near_me).to_be_visible()
    check_accessibility(page, "near-me-search")
    # Tomorrow 10:00-12:00 at the lots, whatever the time of day the test runs.
    search.get_by_label("Arrival").fill(tomorrow_at_the_lot(paris_lots[0], 10))
    search.get_by_label("Departure").fill(tomorrow_at_the_lot(paris_lots[0], 12))

    near_me.click()
    heading = page.get_by_role("heading", name=re.compile("with a free car spot near you"))
    expect(heading).to_be_visible()
    cards = page.locator("li.lot-card")
    expect(cards).to_have_count(2)  # Versailles is 18 km away: beyond the 10 km radius
    expect(cards.nth(0).get_by_role("heading")).to_have_text("Paris Opéra")
    expect(cards.nth(0).locator(".distance")).to_have_text("18 m away")
    expect(cards.nth(1).get_by_role("heading")).to_have_text("Gare du Nord")
    expect(cards.nth(1).locator(".distance")).to_have_text("2.0 km away")
    directions = cards.nth(0).get_by_role("link", name=re.compile("^Directions to Paris Opéra"))
    expect(directions).to_have_attribute(
        "href", "https://www.google.com/maps/dir/?api=1&destination=48.8721,2.331"
    )
    expect(directions).to_have_attribute("target", "_blank")
    check_accessibility(page, "near-me-results")
    screenshot(page, f"near-me-results-{kind}")

    # An address instead: any case, no accents needed. On a phone the results come
    # first and the search folds under "Change search".
    change = page.locator("summary", has_text="Change search")
    if not page.locator("details.search-again").evaluate("d => d.open"):
        change.click()
    search = page.get_by_role("search", name="Find parking")
    search.get_by_label("Address or place").fill("versailles")
    search.get_by_role("button", name="Find a spot").click()
    expect(page.get_by_role("heading", name=re.compile("matching “versailles”"))).to_be_visible()
    expect(page.locator("li.lot-card h3")).to_have_text(["Château"])
    expect(page.locator("li.lot-card .distance")).to_have_count(0)  # no position this time
    screenshot(page, f"near-me-address-{kind}")

    # The lot's facts, before booking.
    page.goto(base + "/lots/paris-opera/")
    facts = page.locator("#lot-facts")
    expect(facts.get_by_role("heading", name="Getting in")).to_be_visible()
    expect(facts).to_contain_text("Open 24/7")
    expect(facts).to_contain_text("1.90 m")
    expect(facts).to_contain_text("Drive in from Rue Auber")
    expect(facts.get_by_role("link", name=re.compile("^Directions"))).to_have_attribute(
        "rel", "noopener noreferrer"
    )
    check_accessibility(page, "lot-facts")
    screenshot(page, f"near-me-lot-{kind}")

    page.goto(base + "/lots/gare-du-nord/")
    expect(page.locator("#lot-facts")).to_contain_text("Mon–Sun 06:00–24:00")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{overflow}px too wide"


def test_a_refused_location_is_explained_and_the_address_search_stays(
    live_server, paris_lots, browser
):
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # no permission
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(live_server.url + "/search/")
        page.get_by_role("button", name="Near me").click()
        status = page.locator("[data-near-me-status]")
        expect(status).to_have_text(
            re.compile(r"(did not let ParkSpot see|could not be found).*Type an address")
        )
        expect(page.get_by_label("Address or place")).to_be_focused()
        expect(page.get_by_role("button", name="Near me")).to_be_enabled()
        assert page.url.endswith("/search/")  # nothing was searched
        check_accessibility(page, "near-me-refused")
        screenshot(page, "near-me-refused-desktop")
    finally:
        context.close()
