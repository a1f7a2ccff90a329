"""Every charge up front in the API: the availability answer and the reservation
carry the no-show charge and the price line by line, and the reservation its
terms (cancelling, not showing up, overstaying, grace, early entry), all read
from the policy module, and all in the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime, timedelta

import time_machine
from django.test import override_settings

from tests.conftest import NOW
from tests.reservations.test_api import availability, book

HOUR = timedelta(hours=1)


def money(amount: int) -> dict:
    return {"amount": amount, "currency": "eur"}


def test_availability_quotes_the_no_show_charge_and_the_price_line_by_line(api, lot, frozen_now):
    start = NOW + 2 * HOUR
    body = availability(api, start, start + timedelta(hours=51))

    assert body["price"] == money(2 * 2000 + 3 * 250)
    assert body["no_show_charge"] == money(2000)  # the first 24 hours, capped
    assert body["price_breakdown"] == [
        {
            "kind": "daily_max",
            "hours": 48,
            "quantity": 2,
            "label": "",
            "unit_price": money(2000),
            "amount": money(4000),
        },
        {
            "kind": "hourly",
            "hours": 3,
            "quantity": 3,
            "label": "",
            "unit_price": money(250),
            "amount": money(750),
        },
    ]


def test_a_short_window_costs_its_whole_price_as_a_no_show(api, lot, frozen_now):
    start = NOW + 2 * HOUR
    body = availability(api, start, start + 3 * HOUR)

    assert body["no_show_charge"] == body["price"] == money(750)
    assert [line["amount"] for line in body["price_breakdown"]] == [money(750)]


def test_a_lot_without_a_rate_for_the_type_has_no_breakdown(api, lot, frozen_now):
    start = NOW + 2 * HOUR
    body = availability(api, start, start + HOUR, vehicle_type="van")

    assert body["price"] is None
    assert body["no_show_charge"] is None
    assert body["price_breakdown"] == []


@override_settings(LATE_CANCEL_POLICY="charge", NO_SHOW_GRACE_MINUTES=60, EARLY_ARRIVAL_MINUTES=15)
def test_a_new_reservation_states_every_charge_before_it_is_paid(driver_api, lot, frozen_now):
    start = NOW + 2 * HOUR
    response = book(driver_api, start, start + timedelta(hours=26))
    assert response.status_code == 201, response.content
    terms = response.json()["terms"]

    assert datetime.fromisoformat(terms["free_cancellation_until"]) == start
    assert terms["no_show_charge"] == money(2000)
    assert datetime.fromisoformat(terms["no_show_after"]) == start + HOUR
    assert terms["grace_minutes"] == 60
    assert datetime.fromisoformat(terms["early_entry_from"]) == start - timedelta(minutes=15)
    assert terms["early_entry_minutes"] == 15
    assert terms["overstay_rate"] == {"hourly": money(250), "daily_max": money(2000)}
    assert terms["late_cancellation"] == {"policy": "charge", "charge_at_most": money(2000)}
    assert terms["cancellation_charge"] == money(0)  # unpaid: nothing to lose yet
    assert terms["price_breakdown"] == [
        {
            "kind": "daily_max",
            "hours": 24,
            "quantity": 1,
            "label": "",
            "unit_price": money(2000),
            "amount": money(2000),
        },
        {
            "kind": "hourly",
            "hours": 2,
            "quantity": 2,
            "label": "",
            "unit_price": money(250),
            "amount": money(500),
        },
    ]
    assert sum(line["amount"]["amount"] for line in terms["price_breakdown"]) == 2500


def test_a_lots_own_grace_period_is_the_one_stated(driver_api, lot, frozen_now):
    lot.no_show_grace_minutes = 20
    lot.save()
    start = NOW + 2 * HOUR
    terms = book(driver_api, start, start + HOUR).json()["terms"]

    assert terms["grace_minutes"] == 20
    assert datetime.fromisoformat(terms["no_show_after"]) == start + timedelta(minutes=20)


@override_settings(LATE_CANCEL_POLICY="refund")
def test_under_the_refund_policy_cancelling_is_free_until_the_grace_period_ends(
    driver_api, lot, frozen_now
):
    start = NOW + 2 * HOUR
    terms = book(driver_api, start, start + HOUR).json()["terms"]

    assert datetime.fromisoformat(terms["free_cancellation_until"]) == start + HOUR


def test_the_schema_documents_the_terms_and_the_breakdown(api, db):
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]

    availability_fields = components["Availability"]["properties"]
    assert {"no_show_charge", "price_breakdown", "price"} <= set(availability_fields)
    terms = components["Terms"]["properties"]
    assert {
        "free_cancellation_until",
        "no_show_charge",
        "overstay_rate",
        "grace_minutes",
        "early_entry_from",
        "price_breakdown",
    } <= set(terms)
    assert set(components["PriceLine"]["properties"]) == {
        "kind",
        "hours",
        "quantity",
        "label",
        "unit_price",
        "amount",
    }


def test_terms_follow_the_clock_not_the_request(driver_api, lot):
    # Stated once, a reservation's free cancellation moment does not move.
    with time_machine.travel(NOW, tick=False):
        start = NOW + 2 * HOUR
        created = book(driver_api, start, start + HOUR).json()
    with time_machine.travel(NOW + HOUR, tick=False):
        again = driver_api.get(f"/api/v1/reservations/{created['id']}").json()
    assert again["terms"]["free_cancellation_until"] == created["terms"]["free_cancellation_until"]
