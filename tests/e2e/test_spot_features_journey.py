"""On a phone, a driver ticks "EV charging" on the lot page: the live quote
counts only spots with a charger, Reserve gives one, and the page that follows
says what the spot has. axe-core finds nothing serious on the way."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from reservations.models import Reservation
from tests.e2e.conftest import screenshot
from tests.e2e.test_website_journeys import check_accessibility, log_in, tomorrow_at_the_lot
from tests.factories import SpotFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_ticking_ev_charging_on_a_phone_books_a_spot_with_a_charger(
    live_server, lot, driver, phone_page
):
    page, base = phone_page, live_server.url
    SpotFactory(lot=lot, label="E-001", has_ev_charging=True, is_covered=True)
    log_in(page, base, driver.email)

    query = (
        f"vehicle_type=car&start={tomorrow_at_the_lot(lot, 10)}&end={tomorrow_at_the_lot(lot, 12)}"
    )
    page.goto(f"{base}/lots/{lot.slug}/?{query}")
    expect(page.get_by_text("4 car spots free")).to_be_visible()
    choice = page.get_by_role("group", name="The spot must have")
    choice.get_by_label("EV charging").check()
    expect(page.get_by_text("1 car spot with EV charging free")).to_be_visible()
    screenshot(page, "spot-features-lot-phone")
    check_accessibility(page, "lot page with a feature ticked")

    page.get_by_role("button", name=re.compile(r"^Reserve for")).click()

    expect(page.get_by_role("heading", name="Pay and confirm")).to_be_visible()
    reservation = Reservation.objects.get(user=driver)
    assert reservation.spot.label == "E-001"
    assert reservation.requested_features == "ev_charging"
    features = page.get_by_role("list", name="What spot E-001 has")
    expect(features).to_contain_text("EV charging")
    expect(features).to_contain_text("Covered")
    screenshot(page, "spot-features-pay-phone")
    check_accessibility(page, "pay page of an EV spot")
