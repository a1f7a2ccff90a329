"""Serving as `make run` and production do: gunicorn with config/gunicorn.py,
debug off. A burst of 200 connections is answered without an error, database
connections stay bounded by the pool, and a stop lets requests in flight finish."""

from __future__ import annotations

import http.client
import json
import signal
import threading
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from parking.services import api_token_create
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.system.processes import collectstatic, free_port, start_gunicorn, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module", autouse=True)
def _static():
    collectstatic()


def _get(port: int, path: str, headers: dict | None = None) -> int:
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        client.request("GET", path, headers=headers or {})
        response = client.getresponse()
        response.read()
        return response.status
    finally:
        client.close()


def test_a_burst_of_200_connections_is_answered_without_an_error():
    lot = LotFactory(slug="burst")
    RateFactory(lot=lot)
    SpotFactory.create_batch(3, lot=lot)
    port = free_port()
    server = start_gunicorn(port)
    paths = ["/healthz", "/api/v1/lots", "/", f"/lots/{lot.slug}/", "/static/css/parkspot.css"]
    statuses: Counter = Counter()
    barrier = threading.Barrier(200)

    def hit(n: int) -> None:
        barrier.wait()
        try:
            statuses[_get(port, paths[n % len(paths)])] += 1
        except OSError as exc:  # a reset or refused connection is the failure
            statuses[type(exc).__name__] += 1

    try:
        threads = [threading.Thread(target=hit, args=(n,)) for n in range(200)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert statuses == Counter({200: 200})


def _post_booking(port: int, token: str, lot_slug: str, n: int) -> int:
    start = timezone.now() + timedelta(hours=2 + 3 * n)
    body = json.dumps(
        {
            "lot_id": lot_slug,
            "vehicle_type": "car",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
        }
    )
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        client.request(
            "POST",
            "/api/v1/reservations",
            body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = client.getresponse()
        response.read()
        return response.status
    finally:
        client.close()


@pytest.mark.postgres
def test_a_burst_of_bookings_never_takes_more_connections_than_the_pools_hold():
    """40 bookings at once, all held up by a lock on their lot: every thread of
    every worker would hold a connection; the pools hand out at most their size."""
    lot = LotFactory(slug="pooled")
    RateFactory(lot=lot)
    SpotFactory.create_batch(50, lot=lot)
    driver = UserFactory(email="pool@example.com")
    token = api_token_create(user=driver).token
    port = free_port()
    # More threads than the pool has connections: the pool, not the thread
    # count, bounds what PostgreSQL is asked for.
    server = start_gunicorn(
        port,
        GUNICORN_THREADS="16",
        DATABASE_POOL_MAX_SIZE="4",
        THROTTLE_BOOKING_RATE="100000/min",
        MAX_UNPAID_HOLDS="100000",
        # The server's connections, told apart from this test process's own (its
        # pool keeps idle the connections earlier tests' threads opened).
        PGAPPNAME="parkspot-pool-test",
    )
    dbname = connection.settings_dict["NAME"]
    statuses: Counter = Counter()
    with (
        psycopg.connect(dbname=dbname, user="postgres", host="127.0.0.1") as blocker,
        psycopg.connect(
            dbname=dbname, user="postgres", host="127.0.0.1", autocommit=True
        ) as watcher,
    ):
        blocker.execute("SELECT 1 FROM lots_lot WHERE id = %s FOR UPDATE", [lot.pk])
        threads = [
            threading.Thread(
                target=lambda n=n: statuses.update([_post_booking(port, token, lot.slug, n)])
            )
            for n in range(40)
        ]
        for thread in threads:
            thread.start()

        def stuck() -> int:
            return watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND wait_event_type = 'Lock'",
                [dbname],
            ).fetchone()[0]

        # Bookings are waiting on the lot's lock (or on their driver's, behind it).
        wait_for(lambda: stuck() >= 4, timeout=30, process=server, what="bookings waiting")
        backends = 0
        for _ in range(20):  # the highest count over the next two seconds
            backends = max(
                backends,
                watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND application_name = 'parkspot-pool-test'",
                    [dbname],
                ).fetchone()[0],
            )
            threading.Event().wait(0.1)
        blocker.rollback()
    for thread in threads:
        thread.join(timeout=60)
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)

    print(f"\nPostgreSQL connections with 40 bookings in flight: {backends}")
    # 2 workers x 4 (not 2 x 16 threads).
    assert 0 < backends <= 2 * 4
    assert statuses == Counter({201: 40})


@pytest.mark.postgres
def test_a_stopped_server_finishes_the_booking_it_is_making():
    """SIGTERM while a booking waits on the database: it is answered 201 and
    recorded; then gunicorn exits cleanly."""
    lot = LotFactory(slug="graceful")
    RateFactory(lot=lot)
    SpotFactory.create_batch(2, lot=lot)
    driver = UserFactory(email="graceful@example.com")
    token = api_token_create(user=driver).token
    port = free_port()
    server = start_gunicorn(port)
    dbname = connection.settings_dict["NAME"]
    start = timezone.now() + timedelta(hours=2)
    body = json.dumps(
        {
            "lot_id": lot.slug,
            "vehicle_type": "car",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
        }
    )
    answer: dict = {}

    def book() -> None:
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        client.request(
            "POST",
            "/api/v1/reservations",
            body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = client.getresponse()
        answer["status"], answer["body"] = response.status, json.loads(response.read())

    # Hold the lot's row: the booking will wait to bump its availability version.
    # (Another connection watches: statistics are frozen within a transaction.)
    with (
        psycopg.connect(dbname=dbname, user="postgres", host="127.0.0.1") as blocker,
        psycopg.connect(
            dbname=dbname, user="postgres", host="127.0.0.1", autocommit=True
        ) as watcher,
    ):
        blocker.execute("SELECT 1 FROM lots_lot WHERE id = %s FOR UPDATE", [lot.pk])
        request = threading.Thread(target=book)
        request.start()

        def waiting() -> bool:
            return (
                watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND wait_event_type = 'Lock'",
                    [dbname],
                ).fetchone()[0]
                > 0
            )

        wait_for(waiting, timeout=30, process=server, what="the booking in flight")
        server.send_signal(signal.SIGTERM)  # stop while the booking is in flight
        blocker.rollback()  # let it through

    request.join(timeout=60)
    assert server.wait(timeout=60) == 0
    assert answer["status"] == 201, answer
    from reservations.models import Reservation

    assert Reservation.objects.filter(code=answer["body"]["id"]).exists()
