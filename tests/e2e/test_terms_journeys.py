"""Every charge up front, in Chromium on a phone and a desktop: the lot page's
quote, the pay page and the pass state the terms before paying and after; axe-core
finds no serious issue; targets are big enough to tap; the phone shows the first
result without scrolling; the home search shows its times whole; times typed in
are read back as the site writes them. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from reservations.models import Reservation, Status
from reservations.services import reservation_confirm
from tests.e2e.conftest import screenshot
from tests.e2e.test_website_journeys import (
    check_accessibility,
    fill_card,
    log_in,
    tomorrow_at_the_lot,
)
from tests.reservations.helpers import book
from tests.stripe_support import GOOD_CARD

pytestmark = pytest.mark.django_db(transaction=True)

# Targets smaller than this (CSS px) are too small to tap reliably (WCAG 2.5.5 asks
# 44; 2.5.8 allows 24 at least). Links inside a sentence are exempt (2.5.8's inline
# exception), as are the browser's own widgets.
MIN_TARGET = 44

SMALL_TARGETS_JS = """
(min) => {
  const inSentence = (el) => {
    const parent = el.parentElement;
    if (!parent || el.tagName !== 'A' || el.classList.contains('button')) return false;
    // Words around it (text, or text in a span, strong...), not other targets.
    const text = [...parent.childNodes]
      .filter((n) => n !== el)
      .filter((n) => n.nodeType === 3 || !n.matches('a, button, input, select, .button'))
      .map((n) => n.textContent)
      .join('')
      .trim();
    return text.length > 0;
  };
  const targets = document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, summary, textarea'
  );
  const small = [];
  for (const el of targets) {
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height) continue;  // not shown
    if (getComputedStyle(el).visibility === 'hidden') continue;
    if (el.closest('#card-element')) continue;  // the card field belongs to Stripe.js
    if (el.classList.contains('skip-link')) continue;  // off-screen until focused
    if (inSentence(el)) continue;
    let height = box.height;
    if (el.type === 'radio' || el.type === 'checkbox') {
      const label = el.closest('label');
      if (label) height = label.getBoundingClientRect().height;
    }
    if (height < min) {
      const name = (el.textContent || el.name || el.type).trim().slice(0, 40);
      small.push(`${el.tagName.toLowerCase()} "${name}" ${Math.round(height)}px`);
    }
  }
  return small;
}
"""


def small_targets(page: Page) -> list[str]:
    return page.evaluate(SMALL_TARGETS_JS, MIN_TARGET)


@pytest.fixture
def payments(stripe, settings, localstripe_url):
    settings.STRIPE_JS_URL = f"{localstripe_url}/js.stripe.com/v3/"
    return stripe


@pytest.fixture(params=["desktop", "phone"])
def device(request) -> tuple[str, Page]:
    fixture = "page" if request.param == "desktop" else "phone_page"
    return request.param, request.getfixturevalue(fixture)


def terms_box(page: Page, title: str):
    box = page.get_by_test_id("terms").filter(has_text=title)
    expect(box).to_be_visible()
    return box


def expect_every_charge(box, lot) -> None:
    day = tomorrow_at_the_lot(lot, 10)[:10]
    expect(box).to_contain_text(re.compile(r"2 h × €2\.50 = €5\.00"))
    expect(box).to_contain_text(re.compile(r"Free until \w{3} \d+ \w{3} \d{4}, 10:00 CET"))
    expect(box).to_contain_text(
        re.compile(r"€5\.00 \(the first 24 hours\) if you have not arrived by .*11:00 CET")
    )
    expect(box).to_contain_text("€2.50 for each started hour after your end")
    expect(box).to_contain_text(re.compile(r"The gate lets you in from .*09:45 CET"))
    assert day  # the window is tomorrow at the lot


def test_every_charge_is_shown_before_paying_and_on_the_pass(
    live_server, lot, payments, driver, device
):
    kind, page = device
    base = live_server.url
    log_in(page, base, driver.email)
    window = (
        f"vehicle_type=car&start={tomorrow_at_the_lot(lot, 10)}&end={tomorrow_at_the_lot(lot, 12)}"
    )

    # The lot page's quote, before reserving.
    page.goto(f"{base}/lots/{lot.slug}/?{window}")
    expect_every_charge(terms_box(page, "What you agree to"), lot)
    check_accessibility(page, f"lot-terms-{kind}")
    screenshot(page, f"terms-lot-{kind}")

    # The results' Reserve books the searched window at once: the pay page states
    # every charge before the card is asked for.
    page.goto(f"{base}/search/?city={lot.city}&{window}")
    screenshot(page, f"terms-search-{kind}")
    page.get_by_role("button", name=re.compile(f"Reserve at {lot.name}")).click()
    expect(page.get_by_role("heading", name="Pay and confirm")).to_be_visible()
    expect_every_charge(terms_box(page, "What you agree to by paying"), lot)
    expect(page.locator("#hold")).to_contain_text(re.compile(r"until \d\d:\d\d CET"))
    expect(page.locator("#when-charged")).to_contain_text("When you press Pay")
    check_accessibility(page, f"pay-terms-{kind}")
    screenshot(page, f"terms-pay-{kind}")

    fill_card(page, GOOD_CARD)
    page.get_by_role("button", name="Pay €5.00").click()
    expect(page.get_by_role("heading", name="Your parking pass")).to_be_visible()
    assert Reservation.objects.get(user=driver).status == Status.CONFIRMED
    expect_every_charge(terms_box(page, "Your terms"), lot)
    check_accessibility(page, f"pass-terms-{kind}")
    screenshot(page, f"terms-pass-{kind}")


def test_reloading_after_a_declined_card_does_not_pay_again(
    live_server, lot, payments, page, driver
):
    base = live_server.url
    log_in(page, base, driver.email)
    reservation = book(driver, lot, start=timezone.now() + timedelta(days=1))
    page.goto(f"{base}/reservations/{reservation.code}/pay/")
    fill_card(page, "4000000000000341")  # attaches, then is declined when charged
    page.get_by_role("button", name=re.compile("^Pay ")).click()
    expect(page.locator("#pay-error")).to_contain_text("declined")
    attempts = len(payments.intents())
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.reload()
    expect(page.get_by_role("heading", name="Pay and confirm")).to_be_visible()
    assert dialogs == []  # no "confirm form resubmission"
    assert len(payments.intents()) == attempts
    expect(page.locator("#pay-error")).to_have_count(0)


def test_targets_are_big_enough_to_tap(live_server, lot, payments, driver, device):
    kind, page = device
    base = live_server.url
    window = (
        f"vehicle_type=car&start={tomorrow_at_the_lot(lot, 10)}&end={tomorrow_at_the_lot(lot, 12)}"
    )
    found = {}
    for path in (
        "/",
        f"/search/?city={lot.city}&{window}",
        f"/lots/{lot.slug}/?{window}",
        "/accounts/login/",
        "/accounts/signup/",
        "/accounts/password-reset/",
    ):
        page.goto(base + path)
        found[path] = small_targets(page)
    log_in(page, base, driver.email)
    pending = book(driver, lot, start=timezone.now() + timedelta(days=1), hours=3)
    paid = book(driver, lot, start=timezone.now() + timedelta(days=2), vehicle_plate="AB-123-CD")
    reservation_confirm(reservation_id=paid.pk)
    for path in (
        f"/search/?city={lot.city}&{window}",
        f"/lots/{lot.slug}/?{window}",
        f"/reservations/{pending.code}/pay/",
        f"/reservations/{paid.code}/",
        "/reservations/",
        f"/reservations/{paid.code}/cancel/",
        "/account/",
    ):
        page.goto(base + path)
        found[path] = small_targets(page)
    assert {path: small for path, small in found.items() if small} == {}, kind


def test_on_a_phone_the_first_result_is_in_view(live_server, lot, phone_page, driver):
    base = live_server.url
    log_in(phone_page, base, driver.email)
    window = (
        f"vehicle_type=car&start={tomorrow_at_the_lot(lot, 10)}&end={tomorrow_at_the_lot(lot, 12)}"
    )
    phone_page.goto(f"{base}/search/?city={lot.city}&{window}")
    reserve = phone_page.get_by_role("button", name=re.compile(f"Reserve at {lot.name}"))
    box = reserve.bounding_box()
    assert box["y"] + box["height"] <= phone_page.viewport_size["height"], box
    # The search is one tap away, folded, saying what was searched.
    summary = phone_page.locator("summary", has_text="Change search")
    expect(summary).to_contain_text(re.compile(f"Car · {lot.city} · .*, 10:00 – 12:00"))
    summary.click()
    expect(phone_page.get_by_role("search", name="Find parking")).to_be_visible()
    screenshot(phone_page, "search-results-first-phone")


def test_the_desktop_home_search_shows_its_times_whole(live_server, lot, page):
    page.goto(live_server.url + "/")
    # The widest text Chromium writes in a time input (en-US), against the room
    # the input leaves for it beside the calendar button.
    clipped = page.evaluate(
        """() => [...document.querySelectorAll('.hero input[type=datetime-local]')].map((input) => {
          const style = getComputedStyle(input);
          const context = document.createElement('canvas').getContext('2d');
          context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
          const widest = context.measureText('12/31/2026, 12:00 PM').width;
          const room = input.clientWidth - parseFloat(style.paddingLeft)
            - parseFloat(style.paddingRight) - 24;  // the calendar button
          return room < widest ? `${input.name}: ${Math.round(room)} < ${Math.round(widest)}` : '';
        }).filter(Boolean)"""
    )
    assert clipped == []
    screenshot(page, "home-search-desktop")


def test_times_typed_in_are_read_back_as_the_site_writes_them(live_server, lot, page):
    page.goto(live_server.url + "/search/")
    search = page.get_by_role("search", name="Find parking")
    search.get_by_label("Arrival").fill("2026-12-01T06:00")
    expect(search.locator("[data-readback-for=id_start]")).to_have_text("Tue 1 Dec 2026, 06:00")
    search.get_by_label("Departure").fill("2026-12-01T18:30")
    expect(search.locator("[data-readback-for=id_end]")).to_have_text("Tue 1 Dec 2026, 18:30")
