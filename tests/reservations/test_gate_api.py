"""The gate API: arrivals and departures reported by a lot's gate hardware."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from lots.services import gate_create, gate_revoke
from parking.services import api_token_create
from reservations.models import Status
from reservations.services import reservation_confirm
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.reservations.helpers import book, overlapping_pairs

pytestmark = pytest.mark.django_db


@pytest.fixture
def start():
    # Gates report what has happened: their times are never far in the future.
    return timezone.now() - timedelta(minutes=1)


@pytest.fixture
def confirmed(lot, driver, start):
    reservation = book(driver, lot, start=start, hours=2, vehicle_plate="AB-123-CD")
    return reservation_confirm(reservation_id=reservation.pk).reservation


@pytest.fixture
def gate(lot):
    return _gate_client(lot)


def _gate_client(lot, name="North entrance") -> APIClient:
    _, key = gate_create(lot=lot, name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.key = key
    return client


def _arrive(client, *, at, **ident):
    return client.post("/api/v1/gate/arrivals", {**ident, "time": at.isoformat()}, format="json")


def _leave(client, *, at, **ident):
    return client.post("/api/v1/gate/departures", {**ident, "time": at.isoformat()}, format="json")


def test_an_arrival_parks_the_car_and_names_its_spot(gate, confirmed, start):
    response = _arrive(gate, reservation_id=confirmed.code, at=start)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "parked"
    assert body["spot"]["label"] == confirmed.spot.label
    assert confirmed.events.get(to_status=Status.PARKED).data == {"gate": "North entrance"}


def test_a_gate_retrying_an_arrival_gets_the_same_answer(gate, confirmed, start):
    first = _arrive(gate, reservation_id=confirmed.code, at=start)
    again = _arrive(gate, reservation_id=confirmed.code.lower(), at=start + timedelta(seconds=5))
    assert again.status_code == 200
    assert again.json() == first.json()
    assert confirmed.events.filter(to_status=Status.PARKED).count() == 1


def test_a_plate_camera_finds_the_reservation(gate, confirmed, start):
    response = _arrive(gate, plate="ab 123 cd", at=start - timedelta(minutes=5))
    assert response.status_code == 200
    assert response.json()["id"] == confirmed.code
    unknown = _arrive(gate, plate="ZZ999ZZ", at=start)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "reservation_not_found")


def test_arrivals_are_accepted_from_early_arrival_until_the_end(gate, confirmed, start):
    too_early = _arrive(gate, reservation_id=confirmed.code, at=start - timedelta(minutes=16))
    assert (too_early.status_code, too_early.json()["code"]) == (409, "too_early")
    with time_machine.travel(confirmed.end + timedelta(minutes=1)):
        too_late = _arrive(gate, reservation_id=confirmed.code, at=confirmed.end)
    assert (too_late.status_code, too_late.json()["code"]) == (409, "too_late")


def test_a_time_in_the_future_or_without_offset_is_refused(gate, confirmed):
    future = _arrive(gate, reservation_id=confirmed.code, at=timezone.now() + timedelta(minutes=3))
    assert (future.status_code, future.json()["code"]) == (400, "time_in_future")
    naive = gate.post(
        "/api/v1/gate/arrivals",
        {"reservation_id": confirmed.code, "time": "2026-03-04T10:00:00"},
        format="json",
    )
    assert (naive.status_code, naive.json()["code"]) == (400, "naive_datetime")
    neither = gate.post(
        "/api/v1/gate/arrivals", {"time": timezone.now().isoformat()}, format="json"
    )
    assert (neither.status_code, neither.json()["code"]) == (400, "reservation_or_plate")


def test_gates_must_present_a_valid_key(api, lot, confirmed, start):
    assert _arrive(api, reservation_id=confirmed.code, at=start).status_code == 401
    api.credentials(HTTP_AUTHORIZATION="Bearer gk_not-a-key")
    wrong = _arrive(api, reservation_id=confirmed.code, at=start)
    assert (wrong.status_code, wrong.json()["code"]) == (401, "authentication_failed")

    gate, key = gate_create(lot=lot, name="Old gate")
    gate_revoke(gate_id=gate.pk)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert _arrive(api, reservation_id=confirmed.code, at=start).status_code == 401


def test_a_driver_token_is_not_a_gate_key(api, driver, confirmed, start):
    token = api_token_create(user=driver).token
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert _arrive(api, reservation_id=confirmed.code, at=start).status_code == 401


def test_a_gate_cannot_see_another_lots_reservations(confirmed, start):
    elsewhere = LotFactory()
    response = _arrive(_gate_client(elsewhere), reservation_id=confirmed.code, at=start)
    assert (response.status_code, response.json()["code"]) == (404, "reservation_not_found")
    confirmed.refresh_from_db()
    assert confirmed.status == Status.CONFIRMED


def test_leaving_early_frees_the_spot_for_the_rest_of_the_window(gate, driver, start):
    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory(lot=lot)
    gate = _gate_client(lot)
    reservation = book(driver, lot, start=start, hours=4)
    reservation_confirm(reservation_id=reservation.pk)
    later = start + timedelta(hours=1)
    with time_machine.travel(later):
        _arrive(gate, reservation_id=reservation.code, at=start)
        left = _leave(gate, reservation_id=reservation.code, at=later)
        assert left.status_code == 200
        assert left.json()["status"] == "completed"
        assert left.json()["charges"]["overstay"]["amount"] == 0

        # The one spot is free again: someone else books the rest of the window.
        rest = book(UserFactory(), lot, start=later, hours=3)
    assert rest.spot_id == reservation.spot_id
    assert overlapping_pairs() == 0


def test_repeating_a_departure_returns_the_same_answer(gate, confirmed, start):
    with time_machine.travel(start + timedelta(hours=1)):
        _arrive(gate, reservation_id=confirmed.code, at=start)
        first = _leave(gate, reservation_id=confirmed.code, at=start + timedelta(hours=1))
        again = _leave(gate, reservation_id=confirmed.code, at=start + timedelta(minutes=61))
    assert first.json() == again.json()


def test_gate_key_command_prints_a_key_once_and_revokes_it(lot, confirmed, start):
    out = StringIO()
    call_command("gate_key", "create", "--lot", lot.slug, "--name", "South", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert _arrive(client, reservation_id=confirmed.code, at=start).status_code == 200

    call_command("gate_key", "revoke", "--lot", lot.slug, "--name", "South", stdout=StringIO())
    assert _arrive(client, reservation_id=confirmed.code, at=start).status_code == 401
    listing = StringIO()
    call_command("gate_key", "list", stdout=listing)
    assert "South" in listing.getvalue()
    assert key not in listing.getvalue()
