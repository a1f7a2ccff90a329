"""Times the clocks pass twice (they go back: 02:30 in Paris on 25 October 2026)
are never resolved silently: the website asks which one is meant, and the search
says so. The API takes offsets, so its times are never ambiguous."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime

import pytest
import time_machine

from config.errors import InvalidInput
from reservations.models import Reservation
from reservations.selectors import AmbiguousLocalTime, local_to_utc

pytestmark = pytest.mark.django_db

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
WINDOW = {"vehicle_type": "car", "start": "2026-10-25T02:30", "end": "2026-10-25T04:00"}


@pytest.fixture
def before_the_change():
    with time_machine.travel(datetime(2026, 10, 20, 10, 0, tzinfo=UTC), tick=True):
        yield


def test_a_repeated_time_is_refused_unless_it_says_which():
    with pytest.raises(AmbiguousLocalTime) as caught:
        local_to_utc(datetime(2026, 10, 25, 2, 30), PARIS)
    assert caught.value.code == "ambiguous_local_time"
    assert caught.value.choices == ((0, "CEST"), (1, "CET"))
    assert "02:30 CEST (the first) or 02:30 CET (an hour later)" in caught.value.detail

    first = local_to_utc(datetime(2026, 10, 25, 2, 30), PARIS, fold=0)
    second = local_to_utc(datetime(2026, 10, 25, 2, 30), PARIS, fold=1)
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert second == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_ordinary_and_skipped_times_are_unchanged():
    assert local_to_utc(datetime(2026, 10, 25, 4, 0), PARIS) == datetime(
        2026, 10, 25, 3, 0, tzinfo=UTC
    )
    with pytest.raises(InvalidInput) as caught:
        local_to_utc(datetime(2026, 3, 29, 2, 30), PARIS)  # the clocks skip it
    assert caught.value.code == "nonexistent_local_time"


def radios(html: str) -> list[str]:
    return re.findall(r'<input type="radio" name="start_fold" value="(\d)"[^>]*>\s*([^<]+)<', html)


def test_the_lot_page_asks_which_and_quotes_nothing_until_told(client, lot, before_the_change):
    html = client.get(f"/lots/{lot.slug}/", WINDOW).content.decode()

    assert "Arrival: which 02:30? The clocks go back that night, so it happens twice." in html
    assert radios(html) == [
        ("0", "02:30 CEST (the first)"),
        ("1", "02:30 CET (the second, an hour later)"),
    ]
    assert "happens twice on 25 October in Europe/Paris" in html
    assert "Reserve for" not in html


@pytest.mark.parametrize(("fold", "price"), [("0", "€7.50"), ("1", "€5.00")])
def test_each_answer_prices_its_own_window(client, lot, before_the_change, fold, price):
    # 02:30 CEST to 04:00 CET is 2 h 30 (3 started hours); 02:30 CET to 04:00 is 1 h 30.
    html = client.get(
        f"/lots/{lot.slug}/quote/", {**WINDOW, "start_fold": fold}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert f'price-large">{price}<' in html
    assert re.search(rf'value="{fold}" checked', html)


def test_reserving_a_repeated_time_books_the_one_chosen(client, driver, lot, before_the_change):
    client.force_login(driver)
    refused = client.post(f"/lots/{lot.slug}/reserve/", {**WINDOW, "idempotency_key": "k1"})
    assert refused.status_code == 400
    assert not Reservation.objects.exists()

    booked = client.post(
        f"/lots/{lot.slug}/reserve/", {**WINDOW, "start_fold": "1", "idempotency_key": "k2"}
    )
    assert booked.status_code == 302
    assert Reservation.objects.get().start == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_the_search_says_the_time_happens_twice(client, lot, before_the_change):
    html = client.get("/search/", {"city": lot.city, **WINDOW}).content.decode()
    assert "That time happens twice in" in html
    assert "is taken for these times" not in html
