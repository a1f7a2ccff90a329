"""Spot features: a driver who asks for EV charging, an accessible or a covered
spot, or room for a tall vehicle, is only ever given a spot that has them (on
the API's lean path and DRF's alike), is told plainly when none is free, and a
move to another spot keeps to what was asked."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from lots.features import spot_needs
from lots.models import Spot
from parking.services import api_token_create
from reservations.models import Reservation, Status
from reservations.services import (
    NoSpotToMoveTo,
    overstays_hold_spots,
    reservation_arrive,
    reservation_confirm,
    spot_take_out_of_service,
)
from tests.conftest import NOW
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.reservations.helpers import book, overlapping_pairs

pytestmark = pytest.mark.django_db

# An Accept header DRF must negotiate sends a request down DRF's path.
DRF = {"HTTP_ACCEPT": "application/json; q=0.9"}
PATHS = pytest.mark.parametrize("path", ["lean", "drf"])


@pytest.fixture
def garage(db):
    """A lot 2.5 m high: plain spots (one of them low), two EV spots (one
    covered), one accessible spot."""
    lot = LotFactory(slug="gare-nord", timezone="Europe/Paris", currency="eur", height_limit_cm=250)
    RateFactory(lot=lot, vehicle_type="car", hourly_amount=300, daily_max_amount=2400)
    SpotFactory(lot=lot, label="A-001", is_accessible=True)
    SpotFactory(lot=lot, label="E-001", has_ev_charging=True)
    SpotFactory(lot=lot, label="E-002", has_ev_charging=True, is_covered=True)
    SpotFactory(lot=lot, label="L-001", max_height_cm=190)
    SpotFactory(lot=lot, label="P-001")
    SpotFactory(lot=lot, label="P-002")
    return lot


@pytest.fixture
def bearer_api(driver) -> APIClient:
    """A driver's client with a real bearer token (the lean path's only door)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=driver).token}")
    return client


def _post(client: APIClient, lot, path: str, hours_ahead: float = 2, **fields):
    start = (timezone.now() + timedelta(hours=hours_ahead)).replace(microsecond=0)
    body = {
        "lot_id": lot.slug,
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
        **fields,
    }
    extra = DRF if path == "drf" else {}
    response = client.post("/api/v1/reservations", body, format="json", **extra)
    assert hasattr(response, "data") == (path == "drf")  # the path asked for answered
    return response


@PATHS
def test_a_driver_asking_for_ev_charging_gets_an_ev_spot_and_sees_it(bearer_api, garage, path):
    response = _post(bearer_api, garage, path, features=["ev_charging"])

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["spot"]["label"] in {"E-001", "E-002"}
    assert "ev_charging" in body["spot"]["features"]
    assert body["requested_features"] == ["ev_charging"]
    assert body["vehicle_height_cm"] is None
    reservation = Reservation.objects.get(code=body["id"])
    assert reservation.requested_features == "ev_charging"
    shown = bearer_api.get(f"/api/v1/reservations/{body['id']}").json()
    assert (shown["requested_features"], shown["spot"]) == (["ev_charging"], body["spot"])


@PATHS
def test_every_feature_asked_for_is_on_the_spot_given(bearer_api, garage, path):
    response = _post(
        bearer_api, garage, path, features=["covered", "ev_charging"], vehicle_height_cm=200
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["spot"] == {
        "id": Spot.objects.get(label="E-002").public_id,
        "label": "E-002",
        "features": ["ev_charging", "covered"],
        "max_height_cm": None,
    }
    assert (body["requested_features"], body["vehicle_height_cm"]) == (
        ["covered", "ev_charging"],
        200,
    )


@PATHS
def test_when_every_ev_spot_is_taken_the_answer_is_409_no_spot_with_features(
    bearer_api, garage, path
):
    for _ in range(2):
        book(
            UserFactory(),
            garage,
            start=timezone.now() + timedelta(hours=2),
            features=["ev_charging"],
        )

    response = _post(bearer_api, garage, path, hours_ahead=2.5, features=["ev_charging"])

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "no_spot_with_features"
    assert "EV charging" in response.json()["detail"]
    # Plain spots are still free: a booking without the feature is made.
    assert _post(bearer_api, garage, path, hours_ahead=2.5).status_code == 201


@PATHS
def test_an_unknown_feature_is_400_invalid_feature(bearer_api, garage, path):
    extra = DRF if path == "drf" else {}
    start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    body = {
        "lot_id": garage.slug,
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
        "features": ["ev_charging", "jacuzzi"],
    }
    response = bearer_api.post("/api/v1/reservations", body, format="json", **extra)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_feature"
    assert list(response.json()["fields"]) == ["features.1"]
    assert not Reservation.objects.exists()


def test_a_bad_vehicle_height_is_400(bearer_api, garage):
    for height, code in ((20, "min_value"), ("tall", "invalid"), (5000, "max_value")):
        start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
        body = {
            "lot_id": garage.slug,
            "vehicle_type": "car",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
            "vehicle_height_cm": height,
        }
        response = bearer_api.post("/api/v1/reservations", body, format="json")
        assert (response.status_code, response.json()["code"]) == (400, code), height


def test_a_tall_vehicle_gets_a_spot_it_fits_under(driver, garage):
    # L-001 (1.90 m) is the first plain spot by label: a plain booking gets it...
    assert book(UserFactory(), garage).spot.label == "L-001"
    # ... and a 2 m vehicle never does, however the lot fills up.
    labels = {
        book(
            UserFactory(), garage, start=timezone.now() + timedelta(hours=4), vehicle_height_cm=200
        ).spot.label
        for _ in range(5)
    }
    assert "L-001" not in labels
    assert len(labels) == 5


def test_a_vehicle_taller_than_the_lot_is_refused_whatever_the_spot(bearer_api, garage):
    response = _post(bearer_api, garage, "lean", vehicle_height_cm=260)

    assert response.status_code == 409
    assert response.json()["code"] == "no_spot_with_features"
    assert response.json()["detail"] == (
        "No spot for a vehicle 260 cm tall is free for that whole window."
    )


def test_a_driver_asking_for_nothing_is_kept_off_ev_and_accessible_spots(garage):
    labels = [book(UserFactory(), garage).spot.label for _ in range(3)]

    # A-001 and E-001 come first by label; plain spots are given out first.
    assert sorted(labels) == ["L-001", "P-001", "P-002"]


def test_a_retry_asking_for_other_features_is_another_request(bearer_api, garage):
    start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    body = {
        "lot_id": garage.slug,
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
        "features": ["ev_charging"],
    }
    first = bearer_api.post("/api/v1/reservations", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    again = bearer_api.post("/api/v1/reservations", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    other = bearer_api.post(
        "/api/v1/reservations",
        {**body, "features": ["accessible"]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")


# --- moves keep to what was asked -------------------------------------------------------


def test_taking_an_ev_spot_out_of_service_moves_its_booking_to_the_other_ev_spot(garage):
    staff = UserFactory(is_staff=True, is_superuser=True)
    ev = book(UserFactory(), garage, features=["ev_charging"])
    away_from = ev.spot.label
    other_ev = "E-002" if away_from == "E-001" else "E-001"

    spot_take_out_of_service(spot_id=ev.spot_id, actor_user=staff, move_reservations=True)

    ev.refresh_from_db()
    assert ev.spot.label == other_ev
    assert ev.needs == spot_needs(["ev_charging"])


def test_an_ev_booking_is_not_moved_to_a_spot_without_ev_charging(garage):
    staff = UserFactory(is_staff=True, is_superuser=True)
    start = timezone.now() + timedelta(hours=1)
    first = book(UserFactory(), garage, start=start, features=["ev_charging"])
    book(UserFactory(), garage, start=start, features=["ev_charging"])  # the other EV spot

    # Plain spots are free, but none has EV charging: nothing moves.
    with pytest.raises(NoSpotToMoveTo):
        spot_take_out_of_service(spot_id=first.spot_id, actor_user=staff, move_reservations=True)

    first.refresh_from_db()
    assert first.spot.has_ev_charging
    assert first.spot.is_active


@pytest.mark.django_db(transaction=True)
def test_the_overstay_sweep_moves_an_ev_booking_only_to_another_ev_spot():
    with time_machine.travel(NOW, tick=False) as clock:
        lot = LotFactory(currency="usd")
        RateFactory(lot=lot, vehicle_type="car")
        SpotFactory(lot=lot, label="A-001")  # plain, and first by label
        SpotFactory(lot=lot, label="E-001", has_ev_charging=True)
        SpotFactory(lot=lot, label="E-002", has_ev_charging=True)
        car = book(UserFactory(), lot, start=NOW, features=["ev_charging"], vehicle_plate="OV-1")
        reservation_confirm(reservation_id=car.pk)
        reservation_arrive(reservation_id=car.pk, at=NOW)
        clock.move_to(NOW + timedelta(minutes=30))
        behind = book(UserFactory(), lot, start=car.end, features=["ev_charging"])
        reservation_confirm(reservation_id=behind.pk)
        assert behind.spot_id == car.spot_id  # best fit: right after the car

        clock.move_to(car.end + timedelta(minutes=10))  # the car is still in
        assert overstays_hold_spots() == 1

    behind.refresh_from_db()
    assert behind.spot.label == "E-002"
    assert behind.events.filter(data__moved_to="E-002").exists()
    assert overlapping_pairs() == 0


# --- availability -----------------------------------------------------------------------


def _availability(client: APIClient, lot, path: str = "lean", **params):
    start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    query = {
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
        **params,
    }
    extra = DRF if path == "drf" else {}
    return client.get(f"/api/v1/lots/{lot.slug}/availability", query, **extra)


@PATHS
def test_availability_counts_only_spots_with_the_features_asked_for(api, garage, path):
    def free(**params) -> int:
        response = _availability(api, garage, path, **params)
        assert response.status_code == 200, response.content
        return response.json()["free_spots"]

    assert free() == 6
    assert free(features="") == 6
    assert free(features="ev_charging") == 2
    assert free(features="ev_charging,covered") == 1
    assert free(features="accessible") == 1
    assert free(vehicle_height_cm="200") == 5  # not L-001
    assert free(vehicle_height_cm="251") == 0  # taller than the lot

    book(UserFactory(), garage, start=timezone.now() + timedelta(hours=2), features=["covered"])

    # Exact after a booking, though the answers were cached.
    assert (free(features="ev_charging"), free(features="covered"), free()) == (1, 0, 5)


@PATHS
def test_availability_with_an_unknown_feature_is_400_invalid_feature(api, garage, path):
    response = _availability(api, garage, path, features="ev_charging,sauna")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_feature"
    assert list(response.json()["fields"]) == ["features"]


def test_availability_with_features_is_the_same_answer_on_both_paths(api, garage):
    lean = _availability(api, garage, "lean", features="covered", vehicle_height_cm="200")
    full = _availability(api, garage, "drf", features="covered", vehicle_height_cm="200")
    assert not hasattr(lean, "data")
    assert hasattr(full, "data")
    assert lean.content == full.content


# --- races ------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_drivers_racing_for_ev_spots_never_get_more_than_there_are():
    lot = LotFactory(slug="race-ev")
    RateFactory(lot=lot, vehicle_type="car")
    for n in range(2):
        SpotFactory(lot=lot, label=f"E-{n}", has_ev_charging=True)
    for n in range(4):
        SpotFactory(lot=lot, label=f"P-{n}")
    drivers = [UserFactory() for _ in range(8)]
    start = timezone.now() + timedelta(hours=3)
    barrier = threading.Barrier(len(drivers))
    outcomes: list[str] = []

    def attempt(user) -> None:
        try:
            barrier.wait()
            try:
                book(user, lot, start=start, features=["ev_charging"])
                outcomes.append("booked")
            except Exception as exc:
                outcomes.append(getattr(exc, "code", repr(exc)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=attempt, args=(user,)) for user in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["booked"] * 2 + ["no_spot_with_features"] * 6
    held = Reservation.objects.filter(lot=lot, status=Status.PENDING_PAYMENT)
    assert sorted(held.values_list("spot__label", flat=True)) == ["E-0", "E-1"]
    assert overlapping_pairs() == 0
