"""Read routing in a cluster (config/db_router.py, docs/scaling.md): stale-tolerant
reads from a replica, a driver's reads after their own write from the leader, the
leader whenever the replica is down or behind. Here the `replica` alias is a second
connection to the test database (as settings make it, TEST MIRROR, when
DATABASE_REPLICA_URL is set); which connection answered is what the tests look at.
The 503s of an unreachable database and the required Idempotency-Key are in
tests/test_cluster_errors.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from config import db_router
from lots.models import Lot
from parking.services import api_token_create
from tests.factories import UserFactory

REPLICA = db_router.REPLICA


def _availability_url(lot) -> str:
    return f"/api/v1/lots/{lot.slug}/availability"


def _window(days: int = 2) -> dict[str, str]:
    start = (timezone.now() + timedelta(days=days)).replace(microsecond=0)
    return {
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
    }


@pytest.fixture(scope="module", autouse=True)
def _replica_alias(django_db_setup, django_db_blocker):
    """The `replica` alias on the test database, for this module's tests: made
    before pytest-django sets a test up, so that a test may name it."""
    with django_db_blocker.unblock():
        connections.settings[REPLICA] = {**connections[DEFAULT_DB_ALIAS].settings_dict}
    yield
    replica_connection = connections[REPLICA]
    replica_connection.close()
    if hasattr(replica_connection, "close_pool"):
        replica_connection.close_pool()
    del connections[REPLICA]
    del connections.settings[REPLICA]


# Transactions of their own: the replica's connection sees what is committed only.
routing_db = pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, REPLICA])


@pytest.fixture
def replica(settings):
    """The router and the pin middleware, as settings configure them when
    DATABASE_REPLICA_URL is set."""
    original = dict(connections.settings[REPLICA])
    settings.DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]
    settings.MIDDLEWARE = [
        "config.db_router.PinAfterWriteMiddleware",
        *settings.MIDDLEWARE,
    ]
    db_router.forget_replica_health()
    yield connections.settings[REPLICA]
    db_router.forget_replica_health()
    if connections.settings[REPLICA] != original:  # a test took it down
        _close_replica()
        connections.settings[REPLICA].clear()
        connections.settings[REPLICA].update(original)


def _close_replica() -> None:
    connections[REPLICA].close()
    if hasattr(connections[REPLICA], "close_pool"):
        connections[REPLICA].close_pool()


def _down(replica_settings: dict) -> None:
    """Point the replica alias somewhere nothing answers."""
    _close_replica()
    if connection.vendor == "sqlite":
        replica_settings["NAME"] = "/nonexistent/dir/replica.sqlite3"
    else:
        replica_settings.update(HOST="127.0.0.1", PORT="1")
        replica_settings["OPTIONS"] = {
            **replica_settings.get("OPTIONS", {}),
            "connect_timeout": 1,
        }
        replica_settings["OPTIONS"].pop("pool", None)


def _token_for(user) -> str:
    return f"Bearer {api_token_create(user=user).token}"


def _book(client: APIClient, lot, params: dict, auth: str, key: str = "k1"):
    return client.post(
        "/api/v1/reservations",
        {"lot_id": lot.slug, **params},
        format="json",
        HTTP_AUTHORIZATION=auth,
        HTTP_IDEMPOTENCY_KEY=key,
    )


# --- read routing -------------------------------------------------------------------------


@routing_db
def test_availability_is_read_from_the_replica(replica, lot):
    client = APIClient()
    with (
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
        CaptureQueriesContext(connection) as on_leader,
    ):
        response = client.get(_availability_url(lot), _window())
    assert response.status_code == 200
    assert response.json()["free_spots"] == 3
    assert len(on_replica) >= 1
    assert len(on_leader) == 0, on_leader.captured_queries


@routing_db
def test_lot_pages_and_lists_are_read_from_the_replica(replica, lot):
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        assert APIClient().get("/api/v1/lots").status_code == 200
        assert Client().get(f"/lots/{lot.slug}/").status_code == 200
    assert len(on_replica) >= 2


@routing_db
def test_a_drivers_availability_after_their_own_booking_is_read_from_the_leader(
    replica, lot, driver
):
    client = APIClient()
    auth = _token_for(driver)
    params = _window()
    assert _book(client, lot, params, auth).status_code == 201
    with (
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
        CaptureQueriesContext(connection) as on_leader,
    ):
        mine = client.get(_availability_url(lot), params, HTTP_AUTHORIZATION=auth)
    assert mine.json()["free_spots"] == 2  # exact: the leader counted the booking
    assert len(on_replica) == 0
    assert len(on_leader) >= 1
    # Another client, who wrote nothing, reads the replica.
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        APIClient().get(_availability_url(lot), params)
    assert len(on_replica) >= 1


@routing_db
def test_a_write_pins_the_browser_to_the_leader_with_a_short_lived_cookie(
    replica, lot, driver, settings
):
    client = APIClient()
    response = _book(client, lot, _window(), _token_for(driver))
    cookie = response.cookies[db_router.PIN_COOKIE]
    assert cookie["max-age"] == settings.READ_YOUR_WRITES_SECONDS
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        client.get(_availability_url(lot), _window())  # the cookie comes back
    assert len(on_replica) == 0


@routing_db
def test_reads_go_to_the_leader_when_the_replica_is_down(replica, lot):
    _down(replica)
    with CaptureQueriesContext(connection) as on_leader:
        response = APIClient().get(_availability_url(lot), _window())
    assert response.status_code == 200
    assert response.json()["free_spots"] == 3
    assert len(on_leader) >= 1
    assert db_router.replica_usable() is False


@routing_db
def test_reads_go_to_the_leader_when_the_replica_lags_too_far(replica, lot, settings):
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = -1  # any lag, even none, is too much
    with (
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
        CaptureQueriesContext(connection) as on_leader,
    ):
        response = APIClient().get(_availability_url(lot), _window())
    assert response.status_code == 200
    assert len(on_replica) == 0
    assert len(on_leader) >= 1


@routing_db
def test_reads_inside_a_transaction_and_all_writes_stay_on_the_leader(replica, lot):
    router = db_router.ReplicaRouter()
    with db_router.reading_replica() as alias:
        assert alias == REPLICA
        assert router.db_for_read(Lot) == REPLICA
        assert router.db_for_write(Lot) == DEFAULT_DB_ALIAS
        with transaction.atomic():
            assert router.db_for_read(Lot) == DEFAULT_DB_ALIAS
    assert router.db_for_read(Lot) == DEFAULT_DB_ALIAS  # outside reading_replica()
    assert router.allow_migrate(REPLICA, "lots") is False


@routing_db
def test_the_occupancy_report_is_read_from_the_replica(replica, lot):
    admin = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        response = client.get(reverse("admin:lots_lot_occupancy", args=[lot.pk]))
    assert response.status_code == 200
    assert len(on_replica) >= 1
