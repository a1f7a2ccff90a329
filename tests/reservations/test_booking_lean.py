"""reserveSpot's lean path (reservations/lean_booking.py): a well-formed booking
with a bearer token is answered without DRF's machinery, as DRF would answer it;
anything else is DRF's to answer, before anything is counted or written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from lots.models import Spot
from parking.services import api_token_create
from reservations.models import Reservation
from tests.metrics_support import Deltas

pytestmark = pytest.mark.django_db


@pytest.fixture
def driver_api(driver) -> APIClient:
    """A driver's client with a real bearer token (the lean path's only door)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=driver).token}")
    return client


# An Accept header DRF must negotiate sends the booking down DRF's path.
DRF = {"HTTP_ACCEPT": "application/json; q=0.9"}


def _body(lot, hours_ahead: float = 2, **changes) -> dict:
    start = (timezone.now() + timedelta(hours=hours_ahead)).replace(microsecond=0)
    body = {
        "lot_id": lot.slug,
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def _without_booking(answer: dict) -> dict:
    return {
        k: v
        for k, v in answer.items()
        if k not in ("id", "spot", "start", "end", "occupied_until", "created_at")
        and k != "hold_expires_at"
        and k != "terms"
    }


def test_a_lean_booking_is_answered_as_drf_answers_it(driver_api, lot):
    lean = driver_api.post("/api/v1/reservations", _body(lot), format="json")
    full = driver_api.post("/api/v1/reservations", _body(lot, 6), format="json", **DRF)
    assert not hasattr(lean, "data")  # not a DRF Response: the lean path answered
    assert hasattr(full, "data")
    assert lean.status_code == full.status_code == 201
    for header in ("Content-Type", "Allow", "Vary", "Content-Security-Policy", "X-Frame-Options"):
        assert lean.headers.get(header) == full.headers.get(header), header
    assert _without_booking(lean.json()) == _without_booking(full.json())
    assert set(lean.json()) == set(full.json())
    assert Reservation.objects.filter(code=lean.json()["id"]).exists()


def test_a_lean_replay_says_so(driver_api, lot):
    body = _body(lot)
    first = driver_api.post("/api/v1/reservations", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = driver_api.post("/api/v1/reservations", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert not hasattr(again, "data")
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


def test_a_refusal_of_the_service_is_answered_and_counted_once(driver_api, lot):
    Spot.objects.filter(lot=lot).update(is_active=False)
    moved = Deltas()
    lean = driver_api.post("/api/v1/reservations", _body(lot), format="json")
    full = driver_api.post("/api/v1/reservations", _body(lot), format="json", **DRF)
    assert not hasattr(lean, "data")
    assert lean.status_code == full.status_code == 409
    assert lean.json() == full.json()
    assert lean.json()["code"] == "no_spot_available"
    assert moved("parkspot_bookings_refused_total", reason="no_spot_available") == 2


def test_a_bad_idempotency_key_is_refused_with_its_code(driver_api, lot):
    response = driver_api.post(
        "/api/v1/reservations", _body(lot), format="json", HTTP_IDEMPOTENCY_KEY="k" * 256
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert not Reservation.objects.exists()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"start": "2026-05-01T09:00:00"}, "naive_datetime"),
        ({"vehicle_type": "tank"}, "invalid_choice"),
        ({"lot_id": None}, "required"),
        ({"lot_id": 12}, "lot_not_found"),  # DRF's CharField takes a number as text
        ({"vehicle_plate": None}, None),
        ({"lot_id": "x" * 61}, "max_length"),
    ],
)
def test_bodies_the_lean_path_does_not_take_get_drfs_answer(driver_api, lot, change, code):
    body = _body(lot)
    body.update(change)
    if change.get("vehicle_plate", "") is None:
        body["vehicle_plate"] = None  # null, sent as such
    body = {k: v for k, v in body.items() if v is not None or k == "vehicle_plate"}
    response = driver_api.post("/api/v1/reservations", body, format="json")
    assert hasattr(response, "data")  # DRF answered
    assert response.status_code in (400, 404)
    if code:
        assert response.json()["code"] == code


def test_a_lean_booking_trims_text_as_drf_does(driver_api, lot):
    response = driver_api.post(
        "/api/v1/reservations",
        _body(lot, lot_id=f"  {lot.slug} ", vehicle_plate=" ab-123-cd "),
        format="json",
    )
    assert not hasattr(response, "data")
    assert response.status_code == 201
    assert response.json()["vehicle_plate"] == "AB123CD"


def test_a_bad_token_is_refused_by_drf_with_its_challenge(api, lot):
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    response = api.post("/api/v1/reservations", _body(lot), format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Reservation.objects.exists()


def test_a_driver_over_the_rate_gets_a_429_with_a_retry_after(settings, driver_api, lot):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "booking": "1/hour",
        },
    }
    assert driver_api.post("/api/v1/reservations", _body(lot), format="json").status_code == 201
    refused = driver_api.post("/api/v1/reservations", _body(lot, 5), format="json")
    assert not hasattr(refused, "data")
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert int(refused["Retry-After"]) > 0
    assert Reservation.objects.count() == 1
