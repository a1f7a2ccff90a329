"""What a cluster needs of the application besides read routing
(tests/test_read_routing.py): a database that cannot be reached answers 503
database_unavailable with Retry-After, never a 500 (config/db_errors.py);
BOOKING_IDEMPOTENCY_KEY_REQUIRED refuses a booking without a key; and a single
node has no replica, router or pin at all.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import DEFAULT_DB_ALIAS, InternalError, OperationalError, connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from config import db_router


def _availability_url(lot) -> str:
    return f"/api/v1/lots/{lot.slug}/availability"


def _window(days: int = 2) -> dict[str, str]:
    start = (timezone.now() + timedelta(days=days)).replace(microsecond=0)
    return {
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
    }


def test_a_single_node_has_no_replica_and_no_router(settings):
    assert set(settings.DATABASES) == {"default"}
    assert not getattr(settings, "DATABASE_ROUTERS", [])
    assert "config.db_router.PinAfterWriteMiddleware" not in settings.MIDDLEWARE
    with db_router.reading_replica() as alias:
        assert alias == DEFAULT_DB_ALIAS


# --- the database unavailable: 503, never a 500 -------------------------------------------


def _database_gone(execute, sql, params, many, context):
    raise OperationalError("server closed the connection unexpectedly")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/api/v1/reservations", "/api/v1/lots", "availability"],
)
def test_the_api_answers_503_with_retry_after_while_the_database_is_unreachable(
    path, lot, driver, settings
):
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(driver)
    url, params = (_availability_url(lot), _window()) if path == "availability" else (path, {})
    with connection.execute_wrapper(_database_gone):
        response = client.get(url, params)
    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.DATABASE_RETRY_AFTER_SECONDS)
    assert response.json()["code"] == "database_unavailable"


def _new_leader_still_promoting(execute, sql, params, many, context):
    try:
        raise psycopg.errors.ReadOnlySqlTransaction(
            "cannot execute UPDATE in a read-only transaction"
        )
    except psycopg.Error as exc:
        raise InternalError(str(exc)) from exc


@pytest.mark.django_db
def test_a_write_refused_by_a_leader_still_being_promoted_is_a_503_not_a_500(lot, driver, settings):
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(driver)
    with connection.execute_wrapper(_new_leader_still_promoting):
        response = client.post(
            "/api/v1/reservations",
            {"lot_id": lot.slug, **_window()},
            format="json",
            HTTP_IDEMPOTENCY_KEY="p",
        )
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"


@pytest.mark.django_db
def test_the_website_answers_503_with_retry_after_while_the_database_is_unreachable(lot, settings):
    client = Client(raise_request_exception=False)
    with connection.execute_wrapper(_database_gone):
        response = client.get(f"/lots/{lot.slug}/")
    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.DATABASE_RETRY_AFTER_SECONDS)
    assert b"One moment" in response.content


# --- Idempotency-Key required ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_booking_without_idempotency_key_is_refused_when_keys_are_required(lot, driver, settings):
    settings.BOOKING_IDEMPOTENCY_KEY_REQUIRED = True
    client = APIClient()
    client.force_authenticate(driver)
    body = {"lot_id": lot.slug, **_window()}
    refused = client.post("/api/v1/reservations", body, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "idempotency_key_required"
    assert driver.reservations.count() == 0
    made = client.post("/api/v1/reservations", body, format="json", HTTP_IDEMPOTENCY_KEY="a")
    assert made.status_code == 201


@pytest.mark.django_db
def test_a_booking_without_idempotency_key_is_taken_by_default(lot, driver):
    client = APIClient()
    client.force_authenticate(driver)
    made = client.post("/api/v1/reservations", {"lot_id": lot.slug, **_window()}, format="json")
    assert made.status_code == 201


@pytest.mark.django_db
def test_an_extension_without_idempotency_key_is_refused_when_keys_are_required(
    lot, driver, settings
):
    settings.BOOKING_IDEMPOTENCY_KEY_REQUIRED = True
    client = APIClient()
    client.force_authenticate(driver)
    made = client.post(
        "/api/v1/reservations",
        {"lot_id": lot.slug, **_window()},
        format="json",
        HTTP_IDEMPOTENCY_KEY="b",
    )
    url = f"/api/v1/reservations/{made.json()['id']}/extend"
    later = {"end": (timezone.now() + timedelta(days=3)).isoformat()}
    refused = client.post(url, later, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "idempotency_key_required"
    # With a key it is judged on its merits (an unpaid hold cannot be extended).
    judged = client.post(url, later, format="json", HTTP_IDEMPOTENCY_KEY="e1")
    assert judged.json()["code"] != "idempotency_key_required"
