"""Finding a lot near you or by address on the website, each with directions, and
a lot's facts (opening hours, height limit, how to get in) on its page and the
pass (issue #14). The "Near me" button itself runs in Chromium (tests/e2e)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from decimal import Decimal

import pytest

from lots.services import lot_facts_set
from reservations.models import Reservation
from reservations.services import reservation_confirm
from tests.factories import LotFactory, RateFactory, SpotFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db

TOMORROW = {"vehicle_type": "car", "start": "2026-03-05T10:00", "end": "2026-03-05T12:00"}
OPERA = (48.8721, 2.3310)


def parking(slug: str, name: str, address: str, at: tuple[float, float] | None, **kw):
    lot = LotFactory(
        slug=slug,
        name=name,
        address=address,
        city=kw.pop("city", "Paris"),
        timezone="Europe/Paris",
        currency="eur",
        latitude=Decimal(f"{at[0]:.6f}") if at else None,
        longitude=Decimal(f"{at[1]:.6f}") if at else None,
    )
    RateFactory(lot=lot, vehicle_type="car", hourly_amount=300, daily_max_amount=2400)
    SpotFactory(lot=lot, label="C-1", vehicle_type="car")
    return lot


@pytest.fixture
def paris_lots(db):
    return [
        parking("paris-opera", "Paris Opéra", "12 Rue Auber, 75009 Paris", OPERA),
        parking("gare-du-nord", "Gare du Nord", "18 Rue de Dunkerque", (48.8809, 2.3553)),
        parking("versailles", "Château", "1 Place d'Armes", (48.8049, 2.1204), city="Versailles"),
        parking("no-map", "Montmartre Caché", "2 Rue Lepic", None),
    ]


def result_names(html: str) -> list[str]:
    return re.findall(r'<li class="card lot-card">\s*<h3><a [^>]*>([^<]+)</a>', html)


def test_near_me_lists_the_nearest_first_with_distances_and_directions(
    client, paris_lots, frozen_now
):
    response = client.get("/search/", {**TOMORROW, "near": "48.8722,2.3312"})
    html = response.content.decode()
    assert response.status_code == 200
    assert result_names(html) == ["Paris Opéra", "Gare du Nord"]  # Versailles: 18 km
    assert "with a free car spot near you" in html
    assert re.search(r'class="distance">18 m away<', html)
    assert re.search(r'class="distance">2.0 km away<', html)
    assert (
        '<a class="directions-link" '
        'href="https://www.google.com/maps/dir/?api=1&amp;destination=48.8721,2.331" '
        'target="_blank" rel="noopener noreferrer">Directions'
        '<span class="visually-hidden"> to Paris Opéra (opens in a new tab)</span></a>'
    ) in html


def test_nothing_near_says_so_instead_of_every_spot_being_taken(client, paris_lots, frozen_now):
    html = client.get("/search/", {**TOMORROW, "near": "43.2965,5.3698"}).content.decode()
    assert "No car parks within 10 km of you." in html
    assert "is taken" not in html


def test_a_position_that_is_not_one_is_a_form_error(client, paris_lots, frozen_now):
    response = client.get("/search/", {**TOMORROW, "near": "somewhere"})
    assert response.status_code == 400
    assert "Your position could not be read" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("opera", ["Paris Opéra"]),
        ("OPÉRA", ["Paris Opéra"]),
        ("rue auber", ["Paris Opéra"]),
        ("75009", ["Paris Opéra"]),
        ("dunkerque", ["Gare du Nord"]),
        ("cache", ["Montmartre Caché"]),
        ("versailles", ["Château"]),
        ("auber paris", ["Paris Opéra"]),  # every word, anywhere
        ("rue paris", ["Gare du Nord", "Montmartre Caché", "Paris Opéra"]),
    ],
)
def test_the_address_search_finds_lots_by_their_own_address_whatever_the_accents(
    client, paris_lots, frozen_now, query, found
):
    html = client.get("/search/", {**TOMORROW, "q": query}).content.decode()
    assert result_names(html) == found
    assert f"matching “{query}”" in html


def test_an_address_nobody_has_says_so(client, paris_lots, frozen_now):
    html = client.get("/search/", {**TOMORROW, "q": "Champs-Élysées"}).content.decode()
    assert "No car park matches “Champs-Élysées”." in html


def test_the_search_form_offers_near_me_and_an_address_field(client, paris_lots):
    html = client.get("/search/").content.decode()
    assert '<label for="id_q">Address or place</label>' in html
    assert '<input type="hidden" name="near" id="id_near">' in html
    # Hidden until the script that uses the browser's position is running.
    assert '<button type="button" class="button button-secondary" data-near-me hidden>' in html


def test_the_lot_page_shows_its_hours_height_limit_instructions_and_directions(client, paris_lots):
    opera = paris_lots[0]
    lot_facts_set(
        lot=opera,
        height_limit_cm=190,
        entry_instructions="Drive in from Rue Auber.\nLift beside C-001.",
        opening_hours=[(day, time(7), time(0)) for day in range(6)],
    )
    html = client.get(f"/lots/{opera.slug}/").content.decode()
    facts = html[html.index('id="lot-facts"') :]
    assert "<li><span>Mon–Sat</span> 07:00–24:00</li>" in facts
    assert "<li><span>Sun</span> Closed</li>" in facts
    assert "<dd>1.90 m</dd>" in facts
    assert "Drive in from Rue Auber.<br>Lift beside C-001." in facts
    assert "https://www.google.com/maps/dir/?api=1&amp;destination=48.8721,2.331" in facts


def test_a_lot_without_facts_is_open_24_7_with_no_height_limit(client, paris_lots):
    html = client.get("/lots/no-map/").content.decode()
    facts = html[html.index('id="lot-facts"') :]
    assert "Open 24/7" in facts
    assert "<dt>Height limit</dt>\n    <dd>None</dd>" in facts
    assert "How to get in" not in facts
    assert "google.com/maps" not in facts  # no coordinates, no directions


def test_the_pass_shows_how_to_get_in(client, driver, paris_lots, frozen_now):
    opera = paris_lots[0]
    lot_facts_set(lot=opera, height_limit_cm=190, entry_instructions="Ramp on Rue Auber.")
    reservation = book(driver, opera, start=datetime(2026, 3, 5, 9, 0, tzinfo=UTC))
    reservation_confirm(reservation_id=reservation.pk)
    client.force_login(driver)
    html = client.get(f"/reservations/{reservation.code}/").content.decode()
    assert "Your parking pass" in html
    assert "Ramp on Rue Auber." in html
    assert "<dd>1.90 m</dd>" in html
    assert "Open 24/7" in html


def test_reserving_outside_the_hours_is_refused_on_the_form(client, driver, paris_lots, frozen_now):
    opera = paris_lots[0]
    lot_facts_set(lot=opera, opening_hours=[(day, time(7), time(11)) for day in range(7)])
    client.force_login(driver)
    response = client.post(f"/lots/{opera.slug}/reserve/", {**TOMORROW, "idempotency_key": "k1"})
    html = response.content.decode()
    assert response.status_code == 409
    assert "Paris Opéra is closed on Thu 5 Mar 2026 at 11:00 (local time)" in html
    assert not Reservation.objects.exists()
    # The live quote says so before pressing Reserve.
    quote = client.get(f"/lots/{opera.slug}/quote/", TOMORROW, headers={"HX-Request": "true"})
    assert "is closed on Thu 5 Mar 2026 at 11:00" in quote.content.decode()


def test_the_search_lists_a_lot_closed_at_those_times_apart(client, paris_lots, frozen_now):
    lot_facts_set(lot=paris_lots[1], opening_hours=[(3, time(11), time(18))])  # Thursdays
    html = client.get("/search/", {**TOMORROW, "q": "paris"}).content.decode()
    assert result_names(html) == ["Montmartre Caché", "Paris Opéra"]
    unavailable = html[html.index("cannot take this booking") :]
    assert re.search(r"Gare du Nord</a>.*?Closed for part of these times", unavailable, re.S)
