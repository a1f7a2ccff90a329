"""Finding parking: the home page, the search across lots and time zones, the lot
page and its live quote (htmx)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lots.constants import VehicleType
from parking.templatetags.parkspot import format_duration, format_money, window
from reservations.models import Reservation
from reservations.selectors import lot_search
from tests.factories import LotFactory, RateFactory, SpotFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db

TOMORROW = {"start": "2026-03-05T10:00", "end": "2026-03-05T12:00"}


@pytest.fixture
def tokyo(db):
    """A lot in Tokyo charging ¥600/h for cars (¥3,000 a day), with 2 car spots."""
    lot = LotFactory(
        slug="tokyo-east", name="Tokyo East", city="Tokyo", timezone="Asia/Tokyo", currency="jpy"
    )
    RateFactory(lot=lot, vehicle_type="car", hourly_amount=600, daily_max_amount=3000)
    for n in (1, 2):
        SpotFactory(lot=lot, label=f"T-{n}", vehicle_type="car")
    return lot


def htmx_get(client, url, data):
    return client.get(url, data, headers={"HX-Request": "true"})


class TestMoneyAndTimes:
    @pytest.mark.parametrize(
        ("amount", "currency", "text"),
        [
            (1250, "eur", "€12.50"),
            (1250, "EUR", "€12.50"),
            (5, "usd", "$0.05"),
            (123456789, "usd", "$1,234,567.89"),
            (1200, "jpy", "¥1,200"),
            (5000, "krw", "₩5,000"),
            (1234, "kwd", "1.234\u00a0KWD"),
            (1250, "sek", "12.50\u00a0SEK"),
            (-250, "gbp", "\u2212£2.50"),
            (0, "eur", "€0.00"),
        ],
    )
    def test_money_is_written_as_people_read_it(self, amount, currency, text):
        assert format_money(amount, currency) == text

    def test_a_window_is_shown_in_the_lots_time_zone(self, lot):
        start = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
        assert window(start, start + timedelta(hours=2), lot) == "Thu 5 Mar 2026, 10:00 – 12:00"
        assert window(start, start + timedelta(hours=16), lot) == (
            "Thu 5 Mar 2026, 10:00 – Fri 6 Mar 2026, 02:00"
        )

    @pytest.mark.parametrize(
        ("minutes", "text"),
        [(30, "30 min"), (120, "2 h"), (150, "2 h 30 min"), (60 * 26, "1 day 2 h"), (0, "0 min")],
    )
    def test_durations(self, minutes, text):
        assert format_duration(timedelta(minutes=minutes)) == text


class TestHome:
    def test_invites_a_search_and_lists_the_lots_with_prices(self, client, lot):
        response = client.get("/")
        html = response.content.decode()
        assert response.status_code == 200
        assert "<title>Reserve a parking spot · ParkSpot</title>" in html
        assert lot.name in html
        assert "from <strong>€2.50</strong>/hour" in html
        assert 'action="/search/"' in html
        assert '<label for="id_start">Arrival</label>' in html

    def test_says_so_when_there_are_no_lots(self, client, db):
        assert "No car parks are open for booking yet" in client.get("/").content.decode()

    def test_serves_our_own_static_files_only(self, client, lot):
        html = client.get("/").content.decode()
        assert "/static/css/parkspot.css" in html
        assert "/static/vendor/htmx-2.0.11.min.js" in html
        assert "cdn" not in html.lower()


class TestSearch:
    def test_lists_lots_with_free_spots_and_their_price_in_local_time(
        self, client, lot, tokyo, frozen_now
    ):
        response = client.get("/search/", {"city": "", "vehicle_type": "car", **TOMORROW})
        html = response.content.decode()
        assert response.status_code == 200
        assert "2 car parks with a free car spot" in html
        # 10:00-12:00 at each lot's own clock: €2.50/h in Paris, ¥600/h in Tokyo.
        assert "€5.00" in html
        assert "¥1,200" in html
        assert "Thu 5 Mar 2026, 10:00 – 12:00 (CET)" in html
        assert "Thu 5 Mar 2026, 10:00 – 12:00 (JST)" in html
        assert f"/lots/{lot.slug}/?vehicle_type=car&amp;start=2026-03-05T10%3A00" in html

    def test_a_city_narrows_the_list(self, client, lot, tokyo, frozen_now):
        html = client.get(
            "/search/", {"city": "Tokyo", "vehicle_type": "car", **TOMORROW}
        ).content.decode()
        assert "1 car park with a free car spot in Tokyo" in html
        assert lot.name not in html

    def test_full_lots_and_passed_times_are_set_apart(self, client, lot, tokyo, driver, frozen_now):
        # Tokyo is full for the window; in Paris it is still to come.
        for _ in range(2):
            book(driver, tokyo, start=datetime(2026, 3, 5, 1, 0, tzinfo=UTC), hours=2)
        html = client.get("/search/", {"vehicle_type": "car", **TOMORROW}).content.decode()
        assert "1 car park with a free car spot" in html
        assert "Full for these times" in html

        # 19:00 today has passed in Tokyo (it is 19:00 there) but not in Paris.
        today = {"start": "2026-03-04T18:00", "end": "2026-03-04T20:00"}
        html = client.get("/search/", {"vehicle_type": "car", **today}).content.decode()
        assert "These times have already passed in Tokyo." in html

    def test_says_when_nothing_is_free(self, client, lot, frozen_now):
        html = client.get(
            "/search/", {"city": lot.city, "vehicle_type": "van", **TOMORROW}
        ).content.decode()
        assert "No free van spots" in html
        assert "Try a shorter stay" in html

    def test_a_bad_window_is_explained_beside_the_field(self, client, lot, frozen_now):
        response = client.get(
            "/search/", {"vehicle_type": "car", "start": "2026-03-05T12:00", "end": "oops"}
        )
        assert response.status_code == 400
        html = response.content.decode()
        assert 'id="id_end_errors"' in html
        assert "Enter a date and time" in html
        assert 'aria-invalid="true"' in html

    def test_with_no_times_it_suggests_some(self, client, lot, frozen_now):
        html = client.get("/search/", {"city": lot.city}).content.decode()
        # 11:00 in Paris now: the next two hours from noon.
        assert 'value="2026-03-04T12:00"' in html
        assert 'value="2026-03-04T14:00"' in html

    def test_takes_a_constant_number_of_queries(self, lot, tokyo, frozen_now):
        def queries() -> int:
            with CaptureQueriesContext(connection) as captured:
                lot_search(
                    vehicle_type="car",
                    local_start=datetime(2026, 3, 5, 10),
                    local_end=datetime(2026, 3, 5, 12),
                )
            return len(captured)

        few = queries()
        for n in range(5):
            more = LotFactory(city="Paris", timezone="Europe/Paris", currency="eur")
            RateFactory(lot=more, vehicle_type="car")
            SpotFactory(lot=more, label=f"X-{n}", vehicle_type="car")
        assert queries() == few == 3  # lots with their rate, their opening hours, free spots

    def test_counts_free_spots_exactly(self, lot, driver, frozen_now):
        book(driver, lot, start=datetime(2026, 3, 5, 9, 0, tzinfo=UTC), hours=2)
        offers = lot_search(
            vehicle_type=VehicleType.CAR,
            local_start=datetime(2026, 3, 5, 10),
            local_end=datetime(2026, 3, 5, 12),
        )
        assert [(o.lot.slug, o.free_spots, o.price_amount) for o in offers] == [(lot.slug, 2, 500)]


class TestLotPage:
    def test_shows_address_rates_and_the_price_of_the_next_two_hours(self, client, lot, frozen_now):
        response = client.get(f"/lots/{lot.slug}/")
        html = response.content.decode()
        assert response.status_code == 200
        assert f"<title>{lot.name} — parking in {lot.city} · ParkSpot</title>" in html
        assert lot.address in html
        assert "€2.50" in html
        assert "€20.00" in html
        # 11:00 in Paris: 12:00-14:00 costs 2 × €2.50.
        assert 'value="2026-03-04T12:00"' in html
        assert "€5.00" in html
        assert "3 car spots free" in html
        assert "Sign up to reserve" in html

    def test_keeps_the_window_from_its_address(self, client, lot, frozen_now):
        html = client.get(
            f"/lots/{lot.slug}/", {"vehicle_type": "car", **TOMORROW}
        ).content.decode()
        assert 'value="2026-03-05T10:00"' in html
        assert "Thu 5 Mar 2026, 10:00 – 12:00" in html

    def test_unknown_lot_is_a_friendly_404(self, client, db):
        response = client.get("/lots/nowhere/")
        assert response.status_code == 404
        assert "We cannot find that page" in response.content.decode()

    def test_signed_in_driver_gets_the_reserve_button(self, client, driver, lot, frozen_now):
        client.force_login(driver)
        html = client.get(f"/lots/{lot.slug}/").content.decode()
        assert "Reserve for €5.00" in html
        assert 'name="idempotency_key"' in html
        assert "Add your vehicle" in html


class TestLiveQuote:
    def test_prices_the_window_without_a_full_page(self, client, lot, frozen_now):
        response = htmx_get(
            client,
            f"/lots/{lot.slug}/quote/",
            {"vehicle_type": "car", "start": "2026-03-05T10:00", "end": "2026-03-05T13:30"},
        )
        html = response.content.decode()
        assert response.status_code == 200
        assert "<html" not in html
        assert "€10.00" in html  # 4 started hours
        assert "for 3 h 30 min" in html
        assert response["HX-Replace-Url"] == (
            f"/lots/{lot.slug}/?vehicle_type=car&start=2026-03-05T10%3A00&end=2026-03-05T13%3A30"
        )

    def test_sends_field_errors_to_their_places(self, client, lot, frozen_now):
        html = htmx_get(
            client,
            f"/lots/{lot.slug}/quote/",
            {"vehicle_type": "car", "start": "2026-03-05T10:00", "end": "2026-03-05T09:00"},
        ).content.decode()
        assert 'id="id_end_errors" data-errors-for="id_end" hx-swap-oob="true"' in html
        assert "Departure must be after arrival." in html
        assert "Choose your vehicle and times to see the price." in html

    def test_says_when_the_lot_is_full(self, client, lot, driver, frozen_now):
        for _ in range(3):
            book(driver, lot, start=datetime(2026, 3, 5, 9, 0, tzinfo=UTC), hours=2)
        html = htmx_get(
            client, f"/lots/{lot.slug}/quote/", {"vehicle_type": "car", **TOMORROW}
        ).content.decode()
        assert "No car spot is free for that whole time." in html
        assert "see other car parks in" in html

    def test_without_htmx_it_is_the_lot_page(self, client, lot, frozen_now):
        response = client.get(f"/lots/{lot.slug}/quote/", {"vehicle_type": "car", **TOMORROW})
        assert response.status_code == 302
        assert response["Location"].startswith(f"/lots/{lot.slug}/?")


def test_the_error_page_stands_alone(rf):
    from config.views import server_error

    response = server_error(rf.get("/lots/x/"))
    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in html
    assert "Traceback" not in html
    assert 'href="/static/css/parkspot.css"' in html


class TestSearchSaysWhyTimesCannotBeBooked:
    """Not "every spot is taken" when it is the times that cannot be booked."""

    def test_times_already_passed_are_said_to_have_passed(self, client, lot, frozen_now):
        past = {"start": "2026-03-03T10:00", "end": "2026-03-03T12:00"}
        html = client.get(
            "/search/", {"city": lot.city, "vehicle_type": "car", **past}
        ).content.decode()
        assert f"These times have already passed in {lot.city}. Choose times still to come." in html
        assert f"These times cannot be booked in {lot.city}" in html
        assert "is taken for these times" not in html
        assert "No free car spots" not in html

    def test_times_too_far_ahead_are_said_to_be_too_far_ahead(
        self, client, lot, frozen_now, settings
    ):
        far = {"start": "2026-09-03T10:00", "end": "2026-09-03T12:00"}
        html = client.get("/search/", {"vehicle_type": "car", **far}).content.decode()
        assert (
            f"Bookings open {settings.BOOKING_MAX_AHEAD_DAYS} days ahead: these times are "
            "too far away yet." in html
        )
        assert "is taken for these times" not in html

    def test_a_full_lot_is_still_said_to_be_full(self, client, lot, driver, frozen_now):
        for _ in range(3):
            book(driver, lot, start=datetime(2026, 3, 5, 9, 0, tzinfo=UTC), hours=2)
        html = client.get(
            "/search/", {"city": lot.city, "vehicle_type": "car", **TOMORROW}
        ).content.decode()
        assert f"Every car spot in {lot.city} is taken for these times." in html


class TestReserveFromTheResults:
    def test_a_signed_in_driver_reserves_the_searched_window_in_one_press(
        self, client, driver, lot, frozen_now
    ):
        client.force_login(driver)
        client.post("/account/", {"plate": "ab-12 cd", "vehicle_type": "car"})
        html = client.get(
            "/search/", {"city": lot.city, "vehicle_type": "car", **TOMORROW}
        ).content.decode()
        form = re.search(
            rf'<form method="post" action="/lots/{lot.slug}/reserve/".*?</form>', html, re.S
        ).group(0)
        fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', form))
        assert 'aria-label="Reserve at' in form

        response = client.post(f"/lots/{lot.slug}/reserve/", fields)

        reservation = Reservation.objects.get(user=driver)
        assert response.status_code == 302
        assert response["Location"] == f"/reservations/{reservation.code}/pay/"
        assert reservation.start == datetime(2026, 3, 5, 9, 0, tzinfo=UTC)  # 10:00 in Paris
        assert reservation.end == datetime(2026, 3, 5, 11, 0, tzinfo=UTC)
        assert reservation.vehicle_plate == "AB12CD"

    def test_a_visitor_is_taken_to_the_lot_page_ready_to_book(self, client, lot, frozen_now):
        html = client.get(
            "/search/", {"city": lot.city, "vehicle_type": "car", **TOMORROW}
        ).content.decode()
        assert (
            f'href="/lots/{lot.slug}/?vehicle_type=car&amp;start=2026-03-05T10%3A00'
            f'&amp;end=2026-03-05T12%3A00#book"' in html
        )


def test_searched_results_fold_the_form_into_what_was_searched(client, lot, frozen_now):
    html = client.get(
        "/search/", {"city": lot.city, "vehicle_type": "car", **TOMORROW}
    ).content.decode()
    summary = re.search(r"<summary>.*?</summary>", html, re.S).group(0)
    assert "Change search" in summary
    assert f"Car · {lot.city} · Thu 5 Mar 2026, 10:00 – 12:00" in summary
    assert '<details class="card search-again" data-open-wide>' in html
