"""Lots API: find lots, see a lot's rates and spots (DESIGN §6)."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from tests.factories import LotFactory, RateFactory, SpotFactory

LOTS = "/api/v1/lots"
LOT_FIELDS = {"id", "name", "address", "city", "latitude", "longitude", "timezone", "currency"}
LOT_FACTS = {"open_24_7", "opening_hours", "height_limit_cm", "entry_instructions"}


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("code"), str)
    assert body["code"]
    assert isinstance(body.get("detail"), str)
    assert body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body


def all_keys_and_ids(value, keys=None, ids=None):
    """Every key anywhere in a JSON document, and every value found under an "id" key."""
    keys = set() if keys is None else keys
    ids = [] if ids is None else ids
    if isinstance(value, dict):
        for key, item in value.items():
            keys.add(key)
            if key == "id":
                ids.append(item)
            all_keys_and_ids(item, keys, ids)
    elif isinstance(value, list):
        for item in value:
            all_keys_and_ids(item, keys, ids)
    return keys, ids


def listed_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [lot["id"] for lot in response.json()["results"]]


@pytest.fixture
def lots(lot):
    """paris-centre (cars) plus: Lyon motorcycles, a Paris lot with a van rate but no van
    spot, a Paris lot with van spots but no van rate, and a closed lot."""
    lot.city = "Paris"
    lot.save(update_fields=["city"])
    lyon = LotFactory(slug="lyon-gare", name="Lyon Gare", city="Lyon", timezone="Europe/Paris")
    RateFactory(lot=lyon, vehicle_type="motorcycle", hourly_amount=100, daily_max_amount=800)
    SpotFactory(lot=lyon, label="M-1", vehicle_type="motorcycle")
    SpotFactory(lot=lyon, label="M-2", vehicle_type="motorcycle", is_active=False)

    rate_only = LotFactory(slug="paris-nord", city="Paris", timezone="Europe/Paris")
    RateFactory(lot=rate_only, vehicle_type="van", hourly_amount=500, daily_max_amount=4000)

    spots_only = LotFactory(slug="paris-sud", city="paris", timezone="Europe/Paris")
    SpotFactory(lot=spots_only, label="V-1", vehicle_type="van")

    closed = LotFactory(slug="paris-closed", city="Paris", is_active=False)
    RateFactory(lot=closed, vehicle_type="car")
    SpotFactory(lot=closed, label="C-1", vehicle_type="car")
    return {"paris": lot, "lyon": lyon}


# --- list -----------------------------------------------------------------------------


def test_anyone_can_list_the_open_lots_by_their_public_ids(api, lots):
    response = api.get(LOTS)

    assert listed_ids(response) == ["lyon-gare", "paris-centre", "paris-nord", "paris-sud"]
    first = response.json()["results"][0]
    assert set(first) == LOT_FIELDS | {"distance_m"}
    assert first["distance_m"] is None  # only with near
    assert first["city"] == "Lyon"
    assert first["timezone"] == "Europe/Paris"
    assert first["currency"] == "usd"


def test_a_closed_lot_is_not_listed(api, lots):
    assert "paris-closed" not in listed_ids(api.get(LOTS))


@pytest.mark.parametrize("city", ["Paris", "paris", "PARIS", " Paris "])
def test_lots_can_be_filtered_by_city_ignoring_case(api, lots, city):
    ids = listed_ids(api.get(LOTS, {"city": city}))

    assert ids == ["paris-centre", "paris-nord", "paris-sud"]


def test_an_unknown_city_lists_nothing(api, lots):
    assert listed_ids(api.get(LOTS, {"city": "Atlantis"})) == []


@pytest.mark.parametrize(
    ("vehicle_type", "expected"),
    [
        ("car", ["paris-centre"]),
        ("motorcycle", ["lyon-gare"]),
        # paris-nord has a van rate but no van spot; paris-sud van spots but no rate.
        ("van", []),
    ],
)
def test_filtering_by_vehicle_type_lists_lots_with_both_a_rate_and_a_spot_for_it(
    api, lots, vehicle_type, expected
):
    assert listed_ids(api.get(LOTS, {"vehicle_type": vehicle_type})) == expected


def test_a_lot_with_many_spots_is_listed_once_for_its_vehicle_type(api, lot):
    for n in range(4, 10):
        SpotFactory(lot=lot, label=f"C-{n:03}", vehicle_type="car")

    assert listed_ids(api.get(LOTS, {"vehicle_type": "car"})) == ["paris-centre"]


def test_city_and_vehicle_type_filters_combine(api, lots):
    assert listed_ids(api.get(LOTS, {"city": "Lyon", "vehicle_type": "car"})) == []
    assert listed_ids(api.get(LOTS, {"city": "Lyon", "vehicle_type": "motorcycle"})) == [
        "lyon-gare"
    ]


def test_an_unknown_vehicle_type_filter_is_400_on_that_field(api, lots):
    body = assert_error(api.get(LOTS, {"vehicle_type": "truck"}), 400, "invalid_choice")

    assert body["fields"]["vehicle_type"][0]["code"] == "invalid_choice"


def test_the_lot_list_pages_with_a_cursor_without_losing_or_repeating_lots(api, db):
    slugs = sorted(f"lot-{n:03}" for n in range(60))
    for slug in slugs:
        LotFactory(slug=slug)

    first = api.get(LOTS)
    assert first.status_code == 200
    page = first.json()
    assert len(page["results"]) == 50
    assert page["previous"] is None
    second = api.get(page["next"])
    assert second.status_code == 200
    rest = second.json()

    assert [lot["id"] for lot in page["results"] + rest["results"]] == slugs
    assert rest["next"] is None


def test_a_garbage_page_cursor_is_400_invalid_cursor(api, lots):
    body = assert_error(api.get(LOTS, {"cursor": "not-a-cursor"}), 400, "invalid_cursor")

    assert body["fields"]["cursor"][0]["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("cD0lMDA=", id="nul-position"),  # base64 of "p=%00"
        pytest.param(base64.b64encode(b"p=a%00b&r=1").decode(), id="nul-inside-reversed"),
    ],
)
def test_a_forged_cursor_holding_a_nul_byte_is_400_invalid_cursor(api, lots, cursor):
    # PostgreSQL refuses NUL in text: the position must never reach the query.
    body = assert_error(api.get(LOTS, {"cursor": cursor}), 400, "invalid_cursor")

    assert body["fields"]["cursor"][0]["code"] == "invalid_cursor"


def test_a_cursor_with_a_position_we_could_have_written_pages_on_from_it(api, db):
    for slug in ("lot-a", "lot-b", "lot-c"):
        LotFactory(slug=slug)

    response = api.get(LOTS, {"cursor": base64.b64encode(b"p=lot-a").decode()})

    assert response.status_code == 200, response.content
    assert [lot["id"] for lot in response.json()["results"]] == ["lot-b", "lot-c"]


def test_lots_are_public_even_with_a_bad_token(lots):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer nonsense")

    assert client.get(LOTS).status_code == 200
    assert client.get(f"{LOTS}/paris-centre").status_code == 200


# --- detail ---------------------------------------------------------------------------


def test_a_lot_shows_its_rates_as_money_and_its_spot_counts_by_type(api, lot):
    lot.address = "12 rue de Rivoli"
    lot.city = "Paris"
    lot.latitude = Decimal("48.856613")
    lot.longitude = Decimal("2.352222")
    lot.save()

    response = api.get(f"{LOTS}/paris-centre")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == LOT_FIELDS | {"rates", "rate_rules", "spots", "spot_features"} | LOT_FACTS
    assert body["id"] == "paris-centre"
    assert body["name"] == lot.name
    assert body["address"] == "12 rue de Rivoli"
    assert body["city"] == "Paris"
    assert body["latitude"] == pytest.approx(48.856613)
    assert body["longitude"] == pytest.approx(2.352222)
    assert body["timezone"] == "Europe/Paris"
    assert body["currency"] == "eur"
    assert body["rates"] == [
        {
            "vehicle_type": "car",
            "hourly": {"amount": 250, "currency": "eur"},
            "daily_max": {"amount": 2000, "currency": "eur"},
        }
    ]
    assert body["spots"] == {"motorcycle": 0, "car": 3, "van": 0}
    assert body["spot_features"] == {"ev_charging": 0, "accessible": 0, "covered": 0}


def test_a_lot_counts_its_spots_with_each_feature_in_service(api, lot):
    SpotFactory(lot=lot, label="E-1", has_ev_charging=True, is_covered=True)
    SpotFactory(lot=lot, label="E-2", has_ev_charging=True, vehicle_type="van")
    SpotFactory(lot=lot, label="E-3", has_ev_charging=True, is_active=False)
    SpotFactory(lot=lot, label="A-1", is_accessible=True)

    body = api.get(f"{LOTS}/paris-centre").json()

    assert body["spot_features"] == {"ev_charging": 2, "accessible": 1, "covered": 1}


def test_spot_counts_leave_out_spots_out_of_service_and_count_each_type(api, lot):
    SpotFactory(lot=lot, label="C-099", vehicle_type="car", is_active=False)
    SpotFactory(lot=lot, label="M-001", vehicle_type="motorcycle")
    SpotFactory(lot=lot, label="V-001", vehicle_type="van")
    SpotFactory(lot=lot, label="V-002", vehicle_type="van")
    RateFactory(lot=lot, vehicle_type="van", hourly_amount=400, daily_max_amount=3000)
    RateFactory(lot=lot, vehicle_type="motorcycle", hourly_amount=100, daily_max_amount=900)

    body = api.get(f"{LOTS}/paris-centre").json()

    assert body["spots"] == {"motorcycle": 1, "car": 3, "van": 2}
    assert [rate["vehicle_type"] for rate in body["rates"]] == ["car", "motorcycle", "van"]
    assert body["rates"][2]["hourly"] == {"amount": 400, "currency": "eur"}
    assert body["rates"][2]["daily_max"] == {"amount": 3000, "currency": "eur"}


def test_a_lot_with_no_coordinates_shows_null_coordinates(api, lot):
    body = api.get(f"{LOTS}/paris-centre").json()

    assert body["latitude"] is None
    assert body["longitude"] is None


def test_no_database_key_appears_in_lot_answers(api, lots):
    lot = lots["paris"]
    for response in (api.get(LOTS), api.get(f"{LOTS}/paris-centre")):
        keys, ids = all_keys_and_ids(response.json())
        assert {"pk", "lot", "lot_pk", "spot_id", "availability_version"}.isdisjoint(keys)
        assert all(isinstance(value, str) for value in ids), ids
        assert lot.pk not in ids
        assert str(lot.pk) not in ids


@pytest.mark.parametrize(
    "lot_id",
    [
        pytest.param("nowhere", id="unknown"),
        pytest.param("paris-closed", id="closed"),
        pytest.param("PARIS-CENTRE", id="wrong-case"),
        pytest.param("1", id="database-key"),
        pytest.param("x" * 3000, id="huge"),
        pytest.param("%F0%9F%85%BF%EF%B8%8F", id="emoji"),
        pytest.param("%00", id="nul-byte"),
        pytest.param("%27%3B--", id="quote"),
    ],
)
def test_an_unknown_lot_is_404_lot_not_found(api, lots, lot_id):
    assert_error(api.get(f"{LOTS}/{lot_id}"), 404, "lot_not_found")


def test_lots_are_read_only(api, lots):
    assert_error(api.post(LOTS, {}, format="json"), 405, "method_not_allowed")
    assert_error(api.delete(f"{LOTS}/paris-centre"), 405, "method_not_allowed")
