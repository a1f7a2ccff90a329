"""Spot features on the website: the lot page offers tick boxes for the
features its spots have, the quote counts only spots with what was ticked,
reserving gives such a spot, and the pass shows what the spot has."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from reservations.models import Reservation
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)  # 10:00 in Paris
WINDOW = {"vehicle_type": "car", "start": "2026-03-05T10:00", "end": "2026-03-05T12:00"}


@pytest.fixture
def signed_in(client, driver):
    client.force_login(driver)
    return client


@pytest.fixture
def ev_lot(lot):
    """paris-centre (C-001..C-003, plain) with one covered EV spot, E-001."""
    SpotFactory(lot=lot, label="E-001", has_ev_charging=True, is_covered=True, max_height_cm=210)
    return lot


def test_the_lot_page_offers_only_the_features_its_spots_have(client, ev_lot, frozen_now):
    html = client.get(f"/lots/{ev_lot.slug}/").content.decode()

    assert "The spot must have" in html
    assert 'value="ev_charging"' in html
    assert 'value="covered"' in html
    assert 'value="accessible"' not in html
    assert "<li>EV charging: 1</li><li>Covered: 1</li>" in html


def test_a_lot_without_featured_spots_asks_nothing(client, lot, frozen_now):
    assert "The spot must have" not in client.get(f"/lots/{lot.slug}/").content.decode()


def test_the_quote_counts_only_spots_with_what_was_ticked(client, ev_lot, frozen_now):
    plain = client.get(f"/lots/{ev_lot.slug}/", WINDOW).content.decode()
    ev = client.get(f"/lots/{ev_lot.slug}/", {**WINDOW, "features": ["ev_charging"]})

    assert "4 car spots free" in plain
    assert "1 car spot with EV charging free" in ev.content.decode()
    assert re.search(
        r'<input type="checkbox" name="features" value="ev_charging"[^>]* checked',
        ev.content.decode(),
    )

    book(UserFactory(), ev_lot, start=START, features=["ev_charging"])
    full = client.get(f"/lots/{ev_lot.slug}/", {**WINDOW, "features": ["ev_charging"]})
    assert "No car spot with EV charging is free for that whole time." in full.content.decode()


def test_reserving_with_ev_charging_ticked_gives_the_ev_spot_and_the_pass_says_so(
    signed_in, driver, ev_lot, frozen_now
):
    response = signed_in.post(
        f"/lots/{ev_lot.slug}/reserve/",
        {**WINDOW, "features": ["ev_charging"], "idempotency_key": "f1"},
    )

    reservation = Reservation.objects.get(user=driver)
    assert response.status_code == 302
    assert reservation.spot.label == "E-001"
    assert reservation.requested_features == "ev_charging"
    page = signed_in.get(f"/reservations/{reservation.code}/").content.decode()
    assert "E-001" in page
    for shown in ("EV charging", "Covered", "Up to 2.10 m"):
        assert f"<li>{shown}</li>" in page, shown


def test_when_the_ev_spot_is_taken_reserving_says_so_and_books_nothing(
    signed_in, driver, ev_lot, frozen_now
):
    book(UserFactory(), ev_lot, start=START, features=["ev_charging"])

    response = signed_in.post(
        f"/lots/{ev_lot.slug}/reserve/",
        {**WINDOW, "features": ["ev_charging"], "idempotency_key": "f2"},
    )

    assert response.status_code == 409
    assert "with what you ticked is free" in response.content.decode()
    assert not Reservation.objects.filter(user=driver).exists()


def test_a_feature_the_lot_does_not_offer_is_a_form_error(signed_in, driver, ev_lot, frozen_now):
    response = signed_in.post(
        f"/lots/{ev_lot.slug}/reserve/",
        {**WINDOW, "features": ["accessible"], "idempotency_key": "f3"},
    )

    assert response.status_code == 400
    assert 'id="id_features_errors"' in response.content.decode()
    assert "not one of the available choices" in response.content.decode()
    assert not Reservation.objects.filter(user=driver).exists()


def test_search_finds_only_car_parks_with_a_free_spot_that_has_what_was_ticked(
    client, driver, ev_lot, frozen_now
):
    plain = LotFactory(slug="plain", name="Plain Lot", city=ev_lot.city, currency="eur")
    RateFactory(lot=plain, vehicle_type="car")
    SpotFactory(lot=plain, label="C-001")
    search = {"city": "", "vehicle_type": "car", **WINDOW}

    everything = client.get("/search/", search).content.decode()
    ev = client.get("/search/", {**search, "features": ["ev_charging"]}).content.decode()

    assert "Plain Lot" in everything
    assert ev_lot.name in everything
    assert "Plain Lot" not in ev
    assert "1 spot free" in ev  # E-001 alone counts
    assert f"/lots/{ev_lot.slug}/?vehicle_type=car&amp;" in ev
    assert "&amp;features=ev_charging" in ev  # the lot page opens with it ticked
    client.force_login(driver)
    signed_in = client.get("/search/", {**search, "features": ["ev_charging"]}).content.decode()
    assert '<input type="hidden" name="features" value="ev_charging">' in signed_in
    book(UserFactory(), ev_lot, start=START, features=["ev_charging"])
    full = client.get("/search/", {**search, "features": ["ev_charging"]}).content.decode()
    assert "Full for these times" in full
