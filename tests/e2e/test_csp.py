"""Every page of the website, the API docs and the main admin pages in headless Chromium
under the enforced Content-Security-Policy: the browser reports no violation (the
`securitypolicyviolation` events of every document, and the console), no script
fails, and the pages still work: the lot page's quote follows the times (htmx),
the card form mounts and the good card pays (Stripe.js: localstripe's), the admin's
autocomplete and occupancy chart work, Swagger UI draws the API.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from playwright.sync_api import BrowserContext, Page, expect

from parking.services import vehicle_add
from reservations.models import Reservation, Status
from reservations.services import reservation_confirm
from tests.e2e.conftest import screenshot
from tests.e2e.test_website_journeys import PASSWORD, fill_card, log_in, tomorrow_at_the_lot
from tests.factories import UserFactory
from tests.reservations.helpers import book
from tests.stripe_support import GOOD_CARD

pytestmark = pytest.mark.django_db(transaction=True)

# Runs in every document (and frame) before its own scripts: hands each violation to
# the test at once, so none is lost when the page navigates away.
REPORT_VIOLATIONS = """
window.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolation({
    page: document.location.href,
    directive: event.effectiveDirective || event.violatedDirective,
    blocked: event.blockedURI,
    source: event.sourceFile + ":" + event.lineNumber,
    sample: event.sample,
  });
}, true);
"""


class Watch:
    """What the browser reported while the test drove it."""

    def __init__(self, context: BrowserContext, base: str):
        self.base = base
        self.violations: list[dict] = []
        self.console: list[str] = []
        self.errors: list[str] = []
        self.unprotected: list[str] = []
        self.documents = 0
        context.expose_function("__cspViolation", self._violation)
        context.add_init_script(REPORT_VIOLATIONS)
        context.on("console", self._console)
        context.on("weberror", lambda error: self.errors.append(str(error.error)))
        context.on("response", self._response)

    def _violation(self, violation: dict) -> None:
        self.violations.append(violation)

    def _console(self, message) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.console.append(text)

    def _response(self, response) -> None:
        # Every page of ours (a document, not a static file) carries the enforced policy.
        if response.request.resource_type != "document" or not response.url.startswith(self.base):
            return
        self.documents += 1
        headers = response.headers
        if "content-security-policy" not in headers or "default-src 'none'" not in headers.get(
            "content-security-policy", ""
        ):
            self.unprotected.append(f"{response.status} {response.url}")

    def settle(self, page: Page) -> None:
        """Let the page finish what it loads, so that late violations are counted."""
        page.wait_for_load_state("networkidle")

    def assert_clean(self) -> None:
        assert self.violations == []
        assert self.console == []
        assert self.errors == []
        assert self.unprotected == []


@pytest.fixture
def payments(stripe, settings, localstripe_url):
    """Payments on, through localstripe, whose Stripe.js stand-in the pay page loads
    (as in test_website_journeys): the policy must follow STRIPE_JS_URL."""
    settings.STRIPE_JS_URL = f"{localstripe_url}/js.stripe.com/v3/"
    return stripe


@pytest.fixture
def watch(page: Page, live_server) -> Watch:
    return Watch(page.context, live_server.url)


def visit(page: Page, watch: Watch, url: str, heading: str) -> None:
    """Open a page of ours: it answers, and its main heading matches `heading` (a regex)."""
    response = page.goto(url)
    assert response is not None
    assert response.status in (200, 404), f"{url}: {response.status}"
    headings = page.locator("h1").all_inner_texts()
    assert any(re.search(heading, text) for text in headings), f"{url}: {headings}"
    watch.settle(page)


def test_the_detector_sees_a_violation(live_server, page, watch):
    """The checks below would catch a violation: an inline style set from a script."""
    visit(page, watch, live_server.url + "/accounts/login/", "Log in")
    page.evaluate("document.body.setAttribute('style', 'outline: 1px solid red')")
    for _ in range(50):  # the report reaches the test through the page's binding
        if watch.violations:
            break
        page.wait_for_timeout(100)
    assert [v["directive"] for v in watch.violations] == ["style-src-attr"]
    assert watch.console, "Chromium names the policy in the console too"


def test_every_website_page_runs_under_the_policy(live_server, lot, payments, driver, page, watch):
    base = live_server.url
    window = (
        f"vehicle_type=car&start={tomorrow_at_the_lot(lot, 10)}&end={tomorrow_at_the_lot(lot, 12)}"
    )

    # --- a visitor ------------------------------------------------------------------------
    visit(page, watch, base + "/", "(?i)parking")
    visit(page, watch, f"{base}/search/?city={lot.city}&{window}", "Find parking")
    expect(page.get_by_role("link", name=re.compile(f"Reserve at {lot.name}"))).to_be_visible()
    visit(page, watch, f"{base}/lots/{lot.slug}/?{window}", re.escape(lot.name))
    # The quote follows the times without reloading the page (htmx under the policy).
    page.evaluate("window.__samePage = true")
    page.get_by_label("Departure").fill(tomorrow_at_the_lot(lot, 13))
    page.get_by_label("Departure").dispatch_event("change")
    expect(page.locator("#quote-region .price")).to_have_text("€7.50")
    assert page.evaluate("window.__samePage") is True
    visit(page, watch, base + "/accounts/signup/", "(?i)account")
    visit(page, watch, base + "/accounts/login/", "Log in")
    visit(page, watch, base + "/accounts/password-reset/", "(?i)password")
    page.locator("#id_email").fill(driver.email)
    page.get_by_role("button", name="Send the link").click()
    page.wait_for_url("**/accounts/password-reset/sent/")
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
    watch.settle(page)
    uid = urlsafe_base64_encode(force_bytes(driver.pk))
    token = default_token_generator.make_token(driver)
    visit(page, watch, f"{base}/accounts/reset/{uid}/{token}/", "Choose a new password")
    visit(page, watch, base + "/accounts/reset/done/", "(?i)password")
    visit(page, watch, base + "/no/such/page/", "We cannot find that page")

    # --- a driver ---------------------------------------------------------------------------
    log_in(page, base, driver.email)
    watch.settle(page)
    vehicle = vehicle_add(owner=driver, plate="AB-123-CD", vehicle_type="car")
    visit(page, watch, base + "/account/", "(?i)account")
    visit(page, watch, f"{base}/account/vehicles/{vehicle.pk}/", "Edit vehicle")
    visit(page, watch, f"{base}/account/vehicles/{vehicle.pk}/remove/", "(?i)remove")
    visit(page, watch, base + "/account/password/", "(?i)password")

    # Reserve on the lot page, pay with the good card on the pay page (Stripe.js mounted).
    visit(page, watch, f"{base}/lots/{lot.slug}/?{window}", re.escape(lot.name))
    page.get_by_role("button", name=re.compile(r"^Reserve for ")).click()
    expect(page.get_by_role("heading", name="Pay and confirm")).to_be_visible()
    expect(page.locator("#card-element input").first).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Pay "))).to_be_enabled()
    watch.settle(page)
    screenshot(page, "csp-pay")
    fill_card(page, GOOD_CARD)
    page.get_by_role("button", name=re.compile("^Pay ")).click()
    expect(page.get_by_role("heading", name="Your parking pass")).to_be_visible()
    reservation = Reservation.objects.get(user=driver)
    assert reservation.status == Status.CONFIRMED
    expect(
        page.get_by_role("img", name=f"QR code of reservation {reservation.code}")
    ).to_be_visible()
    watch.settle(page)

    visit(page, watch, f"{base}/reservations/{reservation.code}/", "Your parking pass")
    visit(page, watch, base + "/reservations/", "My reservations")
    visit(page, watch, f"{base}/reservations/{reservation.code}/cancel/", "Cancel")
    page.get_by_role("button", name="Yes, cancel reservation").click()
    expect(page.get_by_role("status")).to_contain_text("is cancelled")
    watch.settle(page)

    lapsed = book(driver, lot, start=timezone.now() + timedelta(days=3))
    Reservation.objects.filter(pk=lapsed.pk).update(
        hold_expires_at=timezone.now() - timedelta(minutes=1)
    )
    visit(page, watch, f"{base}/reservations/{lapsed.code}/pay/", "Your hold has run out")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    watch.settle(page)

    assert watch.documents >= 25
    watch.assert_clean()


def test_the_api_docs_run_under_the_policy(live_server, page, watch):
    response = page.goto(live_server.url + "/api/v1/docs/")
    assert response is not None
    assert response.status == 200
    # Swagger UI draws the page from the schema it fetches.
    expect(page.locator("h1.title")).to_contain_text("ParkSpot API")
    expect(page.locator(".opblock").first).to_be_visible()
    watch.settle(page)
    watch.assert_clean()


def test_the_admin_runs_under_the_policy(live_server, lot, driver, page, watch):
    base = live_server.url
    paid = book(driver, lot, start=timezone.now() + timedelta(hours=2))
    reservation_confirm(reservation_id=paid.pk)
    UserFactory(email="admin@example.com", is_staff=True, is_superuser=True, password=PASSWORD)

    page.goto(base + "/admin/login/")
    page.fill("#id_username", "admin@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(base + "/admin/")
    watch.settle(page)

    visit(page, watch, base + "/admin/", "")
    visit(page, watch, base + "/admin/reservations/reservation/", "(?i)reservation")
    expect(page.locator("#result_list")).to_contain_text(paid.code)
    visit(
        page,
        watch,
        f"{base}/admin/reservations/reservation/{paid.pk}/change/",
        "Change reservation",
    )
    expect(page.locator(".object-tool-button").first).to_be_visible()
    visit(page, watch, base + "/admin/lots/lot/", "(?i)lot")
    visit(page, watch, f"{base}/admin/lots/lot/{lot.pk}/change/", "(?i)change lot")
    # The booking's own day in the lot's time zone: two hours from now may be tomorrow there.
    day = paid.start.astimezone(lot.tz).date().isoformat()
    visit(page, watch, f"{base}/admin/lots/lot/{lot.pk}/occupancy/?day={day}", "Occupancy")
    chart = page.locator("svg.occupancy-chart")
    expect(chart).to_be_visible()
    assert chart.locator("rect.bar-booked[data-code]").count() == 1
    # Its colours come from the stylesheet now: a booked bar is not painted black.
    fill = chart.locator("rect.bar-booked").first.evaluate("e => getComputedStyle(e).fill")
    assert fill == "rgb(91, 143, 209)"
    screenshot(page, "csp-admin-occupancy")

    # A change form with an autocomplete (Select2 asking the server as one types).
    visit(page, watch, base + "/admin/lots/spot/add/", "(?i)spot")
    page.locator(".select2-selection").first.click()
    expect(page.locator(".select2-results__option", has_text=lot.name)).to_be_visible()
    page.keyboard.press("Escape")
    watch.settle(page)

    assert watch.documents >= 8
    watch.assert_clean()
