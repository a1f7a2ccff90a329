"""A driver whose browser speaks French, in headless Chromium against a live
server and localstripe: logs in, searches, books and pays, and sees the pass, all
in French with French dates and prices, on a desktop and on a phone; the page's
`lang` follows the language; axe-core finds no serious issue; the switcher in
the footer turns the site to English. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Page, expect

from reservations.models import Reservation, Status
from tests.e2e.conftest import screenshot
from tests.e2e.test_website_journeys import PASSWORD, check_accessibility
from tests.factories import UserFactory
from tests.stripe_support import GOOD_CARD

pytestmark = pytest.mark.django_db(transaction=True)

VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}


@pytest.fixture
def payments(stripe, settings, localstripe_url):
    """Payments on, through localstripe, whose Stripe.js stand-in the pay page loads."""
    settings.STRIPE_JS_URL = f"{localstripe_url}/js.stripe.com/v3/"
    return stripe


@pytest.fixture(params=["desktop", "phone"])
def french_device(request, browser) -> tuple[str, Page]:
    """A browser set to French (France): it sends Accept-Language: fr-FR."""
    context = browser.new_context(locale="fr-FR", **VIEWPORTS[request.param])
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield request.param, page
    context.close()


def tomorrow_at_the_lot(lot, hour: int) -> str:
    day = (timezone.now().astimezone(lot.tz) + timedelta(days=1)).date()
    return f"{day.isoformat()}T{hour:02d}:00"


def french_date(lot, hour: int) -> str:
    """Tomorrow at the lot as the French pages write it: jeu. 5 mars 2026, 10:00."""
    day = (timezone.now().astimezone(lot.tz) + timedelta(days=1)).date()
    days = ("lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim.")
    months = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.",
              "nov.", "déc.")  # fmt: skip
    return f"{days[day.weekday()]} {day.day} {months[day.month - 1]} {day.year}, {hour:02d}:00"


def test_a_french_driver_searches_books_pays_and_sees_the_pass_in_french(
    live_server,
    lot,
    payments,
    french_device,
):
    kind, page = french_device
    driver = UserFactory(email=f"camille-{kind}@example.com", full_name="Camille Martin")
    base = live_server.url

    page.goto(f"{base}/accounts/login/")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page).to_have_title("Se connecter · ParkSpot")
    page.get_by_label("Adresse e-mail").fill(driver.email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()

    page.goto(f"{base}/search/")
    search = page.get_by_role("search", name="Trouver un parking")
    search.get_by_label("Ville").select_option(lot.city)
    search.get_by_label("Véhicule").select_option("car")
    search.get_by_label("Arrivée").fill(tomorrow_at_the_lot(lot, 10))
    search.get_by_label("Départ").fill(tomorrow_at_the_lot(lot, 12))
    # What was typed, said back the French way beside the field.
    expect(page.locator("[data-readback-for=id_start]")).to_have_text(french_date(lot, 10))
    search.get_by_role("button", name="Trouver une place").click()
    expect(
        page.get_by_role("heading", name=re.compile("1 parking avec une place voiture libre"))
    ).to_be_visible()
    expect(page.locator(".price").first).to_have_text(re.compile(r"^5,00\s€$"))
    expect(page.get_by_text(f"{french_date(lot, 10)} – 12:00 (CET)")).to_be_visible()
    check_accessibility(page, f"french search ({kind})")
    screenshot(page, f"french-search-{kind}")

    page.get_by_role("link", name=lot.name, exact=True).click()
    reserve = page.get_by_role("button", name=re.compile(r"^Réserver pour 5,00\s€$"))
    expect(reserve).to_be_visible()
    expect(page.get_by_test_id("terms")).to_contain_text("Gratuite jusqu’au")
    check_accessibility(page, f"french lot ({kind})")
    screenshot(page, f"french-lot-{kind}")
    reserve.click()

    expect(page.get_by_role("heading", name="Payer et confirmer")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    card = page.locator("#card-element")
    card.get_by_label("Numéro de carte").fill(GOOD_CARD)
    card.get_by_label("Mois d’expiration (MM)").fill("12")
    card.get_by_label("Année d’expiration (AA)").fill("34")
    card.get_by_label("Code de sécurité (CVC)").fill("123")
    card.get_by_label("Code postal").fill("75009")
    check_accessibility(page, f"french pay ({kind})")
    screenshot(page, f"french-pay-{kind}")
    page.get_by_role("button", name=re.compile(r"^Payer 5,00\s€$")).click()

    expect(page.get_by_role("heading", name="Votre pass de stationnement")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Payé — votre place est réservée.")
    reservation = Reservation.objects.get(user=driver)
    assert reservation.status == Status.CONFIRMED
    expect(
        page.get_by_role("img", name=f"QR code de la réservation {reservation.code}")
    ).to_be_visible()
    arrive = page.locator(".pass dt", has_text="Arrivée dès").locator(
        "xpath=following-sibling::dd[1]"
    )
    expect(arrive).to_have_text(french_date(lot, 10))
    check_accessibility(page, f"french pass ({kind})")
    screenshot(page, f"french-pass-{kind}")

    # Booked in French: the pass e-mail is French too.
    [sent] = [m for m in mail.outbox if m.to == [driver.email] and reservation.code in m.subject]
    assert sent.subject.startswith(f"Votre pass de stationnement {reservation.code}")

    # The footer's switcher: English from now on, on this page and the next.
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Your parking pass")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My reservations").click()
    expect(page.get_by_role("heading", name="My reservations")).to_be_visible()
