"""Lots near a place: GET /api/v1/lots?near=<lat>,<lng>[&radius_m=] (issue #14).

Distances are great-circle (haversine) in SQL, checked against the WGS-84
geodesic distance of real city pairs; nearest first; within a radius; in one
page; bad input is a 400 with a code.
"""

from __future__ import annotations

import math
import random
from decimal import Decimal

import pytest
import yaml
from django.db import connection

from lots.models import Lot
from lots.selectors import EARTH_RADIUS_M, lots_near
from tests.factories import LotFactory, RateFactory, SpotFactory
from tests.lots.test_lots_api import assert_error

LOTS = "/api/v1/lots"

PARIS = (48.8566, 2.3522)
VERSAILLES = (48.8049, 2.1204)
# WGS-84 geodesic distances in metres, computed once with GeographicLib
# (Geodesic.WGS84.Inverse); the haversine on a sphere stays within 0.5 % of them.
CITY_PAIRS = [
    ("Paris", PARIS, "Versailles", VERSAILLES, 17_964),
    ("Paris", PARIS, "London", (51.5074, -0.1278), 343_923),
    ("Tokyo", (35.6762, 139.6503), "Osaka", (34.6937, 135.5023), 393_182),
    ("Sydney", (-33.8688, 151.2093), "Melbourne", (-37.8136, 144.9631), 713_858),
    ("Auckland", (-36.8485, 174.7633), "Suva", (-18.1248, 178.4501), 2_106_136),
    ("New York", (40.7128, -74.0060), "Los Angeles", (34.0522, -118.2437), 3_944_422),
    ("Quito", (-0.1807, -78.4678), "Singapore", (1.3521, 103.8198), 19_743_446),
]


def place(slug: str, at: tuple[float, float], **fields) -> Lot:
    lat, lng = at
    return LotFactory(
        slug=slug,
        name=fields.pop("name", slug.replace("-", " ").title()),
        latitude=Decimal(f"{lat:.6f}"),
        longitude=Decimal(f"{lng:.6f}"),
        **fields,
    )


def near(api, at: tuple[float, float], **params):
    response = api.get(LOTS, {"near": f"{at[0]},{at[1]}", **params})
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def ile_de_france(db):
    """Lots around Paris: 0 m, ~1.1 km, ~5.4 km, Versailles (~18 km), and one
    lot without coordinates."""
    return {
        "opera": place("opera", PARIS, city="Paris"),
        "bastille": place("bastille", (48.8532, 2.3692), city="Paris"),
        "la-defense": place("la-defense", (48.8918, 2.2389), city="Puteaux"),
        "versailles": place("versailles", VERSAILLES, city="Versailles"),
        "nowhere": LotFactory(slug="nowhere", city="Paris"),
    }


def test_lots_near_a_point_come_nearest_first_with_whole_metre_distances(api, ile_de_france):
    body = near(api, (48.8570, 2.3530), radius_m=50_000)
    ids = [lot["id"] for lot in body["results"]]
    assert ids == ["opera", "bastille", "la-defense", "versailles"]
    distances = [lot["distance_m"] for lot in body["results"]]
    assert all(isinstance(d, int) for d in distances)
    assert distances == sorted(distances)
    assert distances[0] == 74  # 0.0004° north (44.5 m), 0.0008° east (58.5 m)
    assert body["next"] is None
    assert body["previous"] is None


@pytest.mark.parametrize(("a_name", "a", "b_name", "b", "geodesic_m"), CITY_PAIRS)
def test_distances_match_real_city_pairs_within_half_a_percent(
    db, a_name, a, b_name, b, geodesic_m
):
    place("there", b)
    (lot,) = lots_near(Lot.objects.all(), *a, radius_m=20_100_000)
    assert int(lot.distance_m) == pytest.approx(geodesic_m, rel=0.005), (a_name, b_name)


def test_the_api_gives_the_real_distance_to_versailles(api, ile_de_france):
    body = near(api, PARIS, radius_m=20_000)
    versailles = next(lot for lot in body["results"] if lot["id"] == "versailles")
    assert versailles["distance_m"] == pytest.approx(17_964, rel=0.005)


def test_the_radius_leaves_out_lots_further_away(api, ile_de_france):
    def ids(**params):
        return [lot["id"] for lot in near(api, PARIS, **params)["results"]]

    assert ids() == ["opera", "bastille", "la-defense"]  # default radius: 10 km
    assert ids(radius_m=17_000) == ["opera", "bastille", "la-defense"]
    assert ids(radius_m=19_000) == ["opera", "bastille", "la-defense", "versailles"]
    assert ids(radius_m=1_000) == ["opera"]
    assert "nowhere" not in ids(radius_m=100_000)  # no coordinates: near nowhere


def test_near_combines_with_the_other_filters(api, ile_de_france):
    paris_cars = ile_de_france["bastille"]
    RateFactory(lot=paris_cars, vehicle_type="van")
    SpotFactory(lot=paris_cars, label="V-1", vehicle_type="van")
    found = near(api, PARIS, radius_m=50_000, vehicle_type="van")["results"]
    assert [lot["id"] for lot in found] == ["bastille"]
    found = near(api, PARIS, radius_m=50_000, city="paris")["results"]
    assert [lot["id"] for lot in found] == ["opera", "bastille"]
    found = near(api, PARIS, radius_m=50_000, q="VERSAILLES")["results"]
    assert [lot["id"] for lot in found] == ["versailles"]


def test_lots_near_a_place_come_in_one_page_of_the_nearest(api, ile_de_france):
    body = near(api, VERSAILLES, radius_m=50_000, page_size=2)
    assert [lot["id"] for lot in body["results"]] == ["versailles", "la-defense"]
    assert body["next"] is None
    response = api.get(LOTS, {"near": "48.85,2.35", "cursor": "cD1vcGVyYQ=="})
    assert_error(response, 400, "invalid_cursor")


def test_without_near_there_is_no_distance_and_paging_is_unchanged(api, ile_de_france):
    body = api.get(LOTS, {"page_size": 2}).json()
    assert [lot["id"] for lot in body["results"]] == ["bastille", "la-defense"]
    assert body["results"][0]["distance_m"] is None
    assert body["next"]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "paris",
        "48.85",
        "48.85,",
        "48.85,2.35,1",
        "91,0",
        "-90.5,0",
        "0,180.1",
        "nan,0",
        "inf,2",
        "1e999,0",
        "48.85;2.35",
        "4" * 100 + ",1",
    ],
)
def test_a_bad_near_is_400_invalid_near(api, db, value):
    body = assert_error(api.get(LOTS, {"near": value}), 400, "invalid_near")
    assert "near" in body["fields"]


@pytest.mark.parametrize("value", ["0", "-5", "100001", "ten", "1.5", "1e3"])
def test_a_bad_radius_is_400_invalid_radius(api, db, value):
    body = assert_error(api.get(LOTS, {"near": "48.85,2.35", "radius_m": value}), 400)
    assert body["code"] == "invalid_radius", body
    assert "radius_m" in body["fields"]


def test_a_radius_without_near_is_400(api, db):
    assert_error(api.get(LOTS, {"radius_m": "500"}), 400, "near_required")


def test_the_poles_and_the_date_line_are_no_edge_of_the_map(db):
    """The bounding box never loses a lot inside the circle: across the 180th
    meridian and around a pole, the answer is that of every lot measured."""
    place("fiji-east", (-17.0, 179.9))
    place("fiji-west", (-17.0, -179.9))
    place("pole-a", (89.95, 0.0))
    place("pole-b", (89.95, 180.0))
    east = [lot.slug for lot in lots_near(Lot.objects.all(), -17.0, 179.95, radius_m=20_000)]
    assert sorted(east) == ["fiji-east", "fiji-west"]
    west = [lot.slug for lot in lots_near(Lot.objects.all(), -17.0, -179.95, radius_m=20_000)]
    assert sorted(west) == ["fiji-east", "fiji-west"]
    pole = [lot.slug for lot in lots_near(Lot.objects.all(), 89.99, 90.0, radius_m=20_000)]
    assert sorted(pole) == ["pole-a", "pole-b"]


def _haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp, dl = p2 - p1, math.radians(b[1] - a[1])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


def test_the_box_finds_exactly_the_lots_a_full_scan_would(db):
    """Oracle: random lots and random searches, near the equator, the poles and
    the date line; the SQL answer is every lot within the radius by Python's
    own haversine, in that order."""
    rng = random.Random(14)
    centres = [(0.0, 0.0), (60.0, 179.5), (-75.0, -179.8), (88.5, 10.0), (48.85, 2.35)]
    spots = []
    for i in range(300):
        clat, clng = rng.choice(centres)
        lat = max(-90.0, min(90.0, clat + rng.uniform(-1.5, 1.5)))
        lng = (clng + rng.uniform(-3.0, 3.0) + 180.0) % 360.0 - 180.0
        spots.append(place(f"l{i}", (round(lat, 6), round(lng, 6))))
    positions = {lot.slug: (float(lot.latitude), float(lot.longitude)) for lot in spots}
    for _ in range(25):
        clat, clng = rng.choice(centres)
        here = (clat + rng.uniform(-1, 1), (clng + rng.uniform(-1, 1) + 180.0) % 360.0 - 180.0)
        radius = rng.choice([5_000, 50_000, 100_000, 200_000])
        found = [
            (lot.slug, int(lot.distance_m))
            for lot in lots_near(Lot.objects.all(), *here, radius_m=radius)
        ]
        expected = sorted(
            (round(d), slug)
            for slug, at in positions.items()
            if (d := _haversine(here, at)) <= radius - 1
        )
        found_slugs = {slug for slug, _ in found}
        assert {slug for _, slug in expected} <= found_slugs
        assert all(_haversine(here, positions[slug]) <= radius + 1 for slug in found_slugs)
        assert [d for _, d in found] == sorted(d for _, d in found)
        for slug, distance in found:
            assert distance == pytest.approx(_haversine(here, positions[slug]), abs=1)


@pytest.mark.postgres
def test_postgresql_reads_the_lat_lng_index_not_every_lot(db):
    rng = random.Random(1)
    Lot.objects.bulk_create(
        Lot(
            slug=f"lot-{i}",
            name=f"Lot {i}",
            address="1 Street",
            city="Somewhere",
            timezone="UTC",
            currency="eur",
            latitude=Decimal(f"{rng.uniform(-60, 70):.6f}"),
            longitude=Decimal(f"{rng.uniform(-180, 180):.6f}"),
        )
        for i in range(1000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE lots_lot")
    query = lots_near(Lot.objects.filter(is_active=True), *PARIS, radius_m=10_000)
    plan = query.explain()
    assert "lot_position" in plan, plan


def test_the_schema_documents_near_radius_and_distance(api, db):
    schema = yaml.safe_load(api.get("/api/v1/schema/").content)
    operation = schema["paths"]["/api/v1/lots"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert {"near", "radius_m", "q", "city", "vehicle_type"} <= set(parameters)
    assert parameters["radius_m"]["schema"]["maximum"] == 100_000
    assert "nearest first" in operation["description"]
    assert "invalid_near" in operation["description"]
    lot = schema["components"]["schemas"]["Lot"]["properties"]
    assert lot["distance_m"]["type"] == "integer"
    assert lot["distance_m"]["nullable"] is True
    detail = schema["components"]["schemas"]["LotDetail"]["properties"]
    assert {"opening_hours", "open_24_7", "height_limit_cm", "entry_instructions"} <= set(detail)
