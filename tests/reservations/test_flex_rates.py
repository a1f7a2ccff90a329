"""Flex rates (issue #15): a lot's rate rules price the quote, the availability
answer and the booking, and a booking keeps the rules in force when it was made
for every later charge (no-show, overstay, extension, late cancellation)."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.db import connection
from rest_framework.test import APIClient

from config.errors import InvalidInput
from lots.models import RateRule
from lots.services import rate_rule_delete, rate_rule_save
from parking.services import api_token_create
from reservations.models import Reservation
from reservations.selectors import booking_terms, reservation_extension_quote, reservation_terms
from reservations.services import (
    reservation_arrive,
    reservation_cancel,
    reservation_confirm,
    reservation_depart,
    reservation_mark_no_show,
)
from tests.conftest import NOW
from tests.factories import UserFactory
from tests.reservations.helpers import book as book_service
from tests.reservations.test_api import availability, booked

HOUR = timedelta(hours=1)
# NOW is Wednesday 4 March 2026, 11:00 in Paris; the lot charges €2.50/h, €20 a day.
NOON = NOW + HOUR  # 12:00 in Paris
MON_TO_FRI = 0b0011111


def peak_rule(
    lot, *, amount=400, name="weekday peak", start=time(12), end=time(14), **fields
) -> RateRule:
    """Monday to Friday (unless told), 12:00-14:00 in Paris, at `amount` an hour."""
    fields.setdefault("weekdays", MON_TO_FRI)
    return rate_rule_save(
        rule=RateRule(
            lot=lot,
            name=name,
            kind=RateRule.Kind.WEEKLY,
            start_time=start,
            end_time=end,
            hourly_amount=amount,
            **fields,
        )
    )


def money(amount: int) -> dict:
    return {"amount": amount, "currency": "eur"}


@pytest.fixture
def token_api(driver) -> APIClient:
    """A driver's client with a bearer token: bookings take the lean path."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=driver).token}")
    return client


# --- the price of a window -------------------------------------------------------------


def test_availability_prices_hours_in_a_weekday_peak_at_the_peak_amount(api, lot, frozen_now):
    peak_rule(lot)
    body = availability(api, NOON, NOON + 5 * HOUR)  # 12:00-17:00: 2 h peak, 3 h base
    assert body["price"] == money(2 * 400 + 3 * 250)
    assert body["no_show_charge"] == money(1550)
    assert [
        (line["quantity"], line["label"], line["amount"]) for line in body["price_breakdown"]
    ] == [
        (2, "weekday peak", money(800)),
        (3, "base rate", money(750)),
    ]


def test_a_rule_for_another_vehicle_type_or_switched_off_changes_nothing(api, lot, frozen_now):
    peak_rule(lot, vehicle_type="van")
    peak_rule(lot, name="off", is_active=False)
    assert availability(api, NOON, NOON + 5 * HOUR)["price"] == money(5 * 250)


def test_saving_a_rule_ends_a_cached_availability_answer(api, lot, frozen_now):
    assert availability(api, NOON, NOON + 2 * HOUR)["price"] == money(500)
    rule = peak_rule(lot)
    assert availability(api, NOON, NOON + 2 * HOUR)["price"] == money(800)
    rate_rule_delete(rule=rule)
    assert availability(api, NOON, NOON + 2 * HOUR)["price"] == money(500)


def test_an_event_rate_beats_the_weekly_rule(api, lot, frozen_now):
    peak_rule(lot)
    rate_rule_save(
        rule=RateRule(
            lot=lot,
            name="Salon de l'Auto",
            kind=RateRule.Kind.EVENT,
            starts_at=NOON,
            ends_at=NOON + HOUR,
            hourly_amount=1000,
        )
    )
    body = availability(api, NOON, NOON + 3 * HOUR)  # 12:00 event, 13:00 peak, 14:00 base
    assert body["price"] == money(1000 + 400 + 250)


def test_a_bad_rule_is_refused_with_a_code_and_the_field(lot):
    with pytest.raises(InvalidInput) as refused:
        peak_rule(lot, start=time(14), end=time(12))
    assert refused.value.code == "invalid_rate_rule"
    assert refused.value.field == "end_time"
    assert not RateRule.objects.exists()


# --- the booking's price -------------------------------------------------------------------


def test_a_booking_through_drf_costs_what_the_rules_say(driver_api, lot, frozen_now):
    peak_rule(lot)
    reservation = booked(driver_api, NOON, NOON + 5 * HOUR)
    assert reservation["price"] == money(1550)
    assert reservation["terms"]["no_show_charge"] == money(1550)
    assert [line["label"] for line in reservation["terms"]["price_breakdown"]] == [
        "weekday peak",
        "base rate",
    ]


def test_a_lean_booking_costs_what_the_rules_say(token_api, lot, frozen_now):
    peak_rule(lot)
    response = token_api.post(
        "/api/v1/reservations",
        {
            "lot_id": lot.slug,
            "vehicle_type": "car",
            "start": NOON.isoformat(),
            "end": (NOON + 5 * HOUR).isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert not hasattr(response, "data")  # the lean path answered
    assert response.json()["price"] == money(1550)
    assert Reservation.objects.get().price_amount == 1550


def test_a_booking_at_a_lot_without_rules_records_no_rules(driver, lot, frozen_now):
    reservation = book_service(driver, lot, start=NOON, hours=5)
    assert reservation.tariff_rules is None
    assert reservation.price_amount == 5 * 250


# --- a rule changed after the booking changes nothing booked --------------------------------


def _confirmed_peak_booking(lot, *, hours=1):
    """12:00-13:00 in Paris, in the €4.00 weekday peak (12:00-14:00), paid."""
    peak_rule(lot)
    reservation = book_service(UserFactory(), lot, start=NOON, hours=hours)
    return reservation_confirm(reservation_id=reservation.pk).reservation


def _change_the_rules_after_booking(lot):
    rule = RateRule.objects.get(lot=lot)
    rule.hourly_amount = 900
    rule.end_time = time(0)  # and until midnight
    rate_rule_save(rule=rule)


def test_editing_a_rule_after_booking_keeps_the_price_and_the_no_show_charge(api, lot, frozen_now):
    reservation = _confirmed_peak_booking(lot)
    _change_the_rules_after_booking(lot)
    assert availability(api, NOON, NOON + HOUR)["price"] == money(900)  # new bookings pay more

    reservation.refresh_from_db()
    assert reservation.price_amount == 400
    terms = reservation_terms(reservation)
    assert (terms.price, terms.no_show_charge) == (400, 400)
    no_show = reservation_mark_no_show(
        reservation_id=reservation.pk, at=NOON + 2 * HOUR
    ).reservation
    assert no_show.amount_due == 400


def test_an_overstay_is_charged_at_the_rules_in_force_when_booked(lot, frozen_now):
    reservation = _confirmed_peak_booking(lot)
    _change_the_rules_after_booking(lot)
    reservation_arrive(reservation_id=reservation.pk, at=NOON)
    frozen_now.move_to(NOON + 3 * HOUR)
    # Left at 15:00 (booked until 13:00): 13:00 at the peak as booked, 14:00 at the base.
    left = reservation_depart(reservation_id=reservation.pk, at=NOON + 3 * HOUR).reservation
    assert left.overstay_amount == 400 + 250


def test_an_extension_is_priced_at_the_rules_in_force_when_booked(lot, frozen_now):
    reservation = _confirmed_peak_booking(lot)
    _change_the_rules_after_booking(lot)
    quote = reservation_extension_quote(reservation, new_end=NOON + 3 * HOUR)
    assert (quote.amount, quote.new_total) == (400 + 250, 400 + 400 + 250)


def test_deleting_a_rule_after_booking_keeps_the_late_cancellation_charge(lot, frozen_now):
    reservation = _confirmed_peak_booking(lot, hours=3)  # 12:00-15:00: 400 + 400 + 250
    rate_rule_delete(rule=RateRule.objects.get(lot=lot))
    frozen_now.move_to(NOON + timedelta(minutes=90))  # past the grace: the no-show charge
    cancelled = reservation_cancel(reservation_id=reservation.pk).reservation
    assert cancelled.amount_due == 1050
    assert booking_terms(cancelled).price == 1050


# --- what it costs the hot path ----------------------------------------------------------


def _queries_to_book(driver, lot, start) -> tuple[int, Reservation]:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        reservation = book_service(driver, lot, start=start)
    return len(captured), reservation


def test_a_booking_at_a_lot_with_rules_costs_one_query_more(driver, lot):
    from django.utils import timezone

    start = timezone.now() + HOUR
    book_service(driver, lot, start=start)  # the next two each have a neighbour before them
    without, _ = _queries_to_book(driver, lot, start + 3 * HOUR)
    peak_rule(lot, start=time(0), end=time(0), weekdays=0b1111111)  # all day, every day
    with_rules, reservation = _queries_to_book(driver, lot, start + 6 * HOUR)
    assert with_rules == without + 1  # the rules, read once the rate says there are some
    assert reservation.tariff_rules["rules"][0][1] == "weekday peak"
    assert reservation.price_amount == 2 * 400


# --- the lot in the API ------------------------------------------------------------------


def test_the_lot_in_the_api_lists_its_rules_in_force_or_to_come(api, lot, frozen_now):
    peak_rule(lot)
    rate_rule_save(
        rule=RateRule(
            lot=lot,
            name="last week's fair",
            kind=RateRule.Kind.EVENT,
            starts_at=NOW - timedelta(days=8),
            ends_at=NOW - timedelta(days=7),
            hourly_amount=1000,
        )
    )
    body = api.get(f"/api/v1/lots/{lot.slug}").json()
    assert body["rate_rules"] == [
        {
            "name": "weekday peak",
            "vehicle_type": None,
            "kind": "weekly",
            "weekdays": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "start_time": "12:00",
            "end_time": "14:00",
            "starts_at": None,
            "ends_at": None,
            "hourly": money(400),
            "priority": 0,
        }
    ]


def test_staff_see_the_rates_a_booking_was_made_at(client, lot, frozen_now):
    from django.contrib.auth import get_user_model

    reservation = _confirmed_peak_booking(lot)
    _change_the_rules_after_booking(lot)
    boss = get_user_model().objects.create_superuser(email="boss@example.com", password="x-pw-1")
    client.force_login(boss)
    page = client.get(f"/admin/reservations/reservation/{reservation.pk}/change/")
    assert "2.50 EUR an hour, at most 20.00 EUR a day; weekday peak: 4.00 EUR an hour" in (
        page.content.decode()
    )
