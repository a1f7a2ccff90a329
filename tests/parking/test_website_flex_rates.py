"""Flex rates on the website (issue #15): the lot page's quote, the search and the
pass state the price line by line with the rule each hour is charged at, and the
pass keeps the rules the booking was made with."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from lots.models import RateRule
from lots.services import rate_rule_save
from reservations.services import reservation_confirm
from tests.parking.test_website_terms import text_of
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db

# Thursday 5 March 2026, 12:00-17:00 in Paris; the lot charges €2.50/h, €20 a day.
WINDOW = "vehicle_type=car&start=2026-03-05T12:00&end=2026-03-05T17:00"
START = datetime(2026, 3, 5, 11, 0, tzinfo=UTC)


@pytest.fixture
def peak(lot) -> RateRule:
    return rate_rule_save(
        rule=RateRule(
            lot=lot,
            name="weekday peak",
            weekdays=0b0011111,
            start_time=time(12),
            end_time=time(14),
            hourly_amount=400,
        )
    )


def test_the_quote_states_each_hour_at_the_rule_it_is_charged_at(client, lot, peak, frozen_now):
    text = text_of(client.get(f"/lots/{lot.slug}/?{WINDOW}"))
    assert "2 h × €4.00 (weekday peak) = €8.00" in text
    assert "3 h × €2.50 (base rate) = €7.50" in text
    assert "€15.50 (the first 24 hours)" in text
    assert "(or the rate of weekday peak in its hours, as when you booked)" in text


def test_the_search_prices_the_window_with_the_rules(client, lot, peak, frozen_now):
    text = text_of(client.get(f"/search/?city={lot.city}&{WINDOW}"))
    assert "€15.50" in text


def test_the_pass_keeps_the_rules_the_booking_was_made_with(client, driver, lot, peak, frozen_now):
    reservation = reservation_confirm(
        reservation_id=book(driver, lot, start=START, hours=5).pk
    ).reservation
    peak.hourly_amount = 900
    rate_rule_save(rule=peak)
    client.force_login(driver)
    text = text_of(client.get(f"/reservations/{reservation.code}/"))
    assert "2 h × €4.00 (weekday peak) = €8.00" in text
    assert "€9.00" not in text


def test_the_lot_page_lists_the_times_with_other_prices(client, lot, peak, frozen_now):
    rate_rule_save(
        rule=RateRule(
            lot=lot,
            name="Fair",
            kind=RateRule.Kind.EVENT,
            starts_at=datetime(2026, 3, 20, 8, 0, tzinfo=UTC),
            ends_at=datetime(2026, 3, 22, 17, 0, tzinfo=UTC),
            hourly_amount=900,
            vehicle_type="car",
        )
    )
    text = text_of(client.get(f"/lots/{lot.slug}/"))
    assert "weekday peak: €4.00 per hour, Mon–Fri 12:00–14:00" in text
    assert (
        "Fair: €9.00 per hour (cars), Fri 20 Mar 2026, 09:00 CET to Sun 22 Mar 2026, 18:00 CET"
        in text
    )
