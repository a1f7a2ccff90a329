"""The staff's lists of reservations and of their events stay quick on a year of
history: each page reads the rows it shows, by an index, never the whole table
(a year of 100 lots took 10 to 22 s a reservation page: the whole table sorted,
its years listed, its lots listed, searched with "contains")."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench import database
from parking.models import User
from reservations.models import Reservation, ReservationEvent
from tests.factories import LotFactory, RateFactory, SpotFactory
from tests.lots.test_admin import admin_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def long_history(db):
    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory.create_batch(40, lot=lot)
    # As many drivers as the bench's: each has a small share of the history.
    User.objects.bulk_create(User(email=f"driver{i}@example.com") for i in range(200))
    drivers = list(User.objects.values_list("pk", flat=True))
    database._long_history([lot.pk], 365, drivers, now=timezone.now(), rng=random.Random(9))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE reservations_reservation"
            " SET vehicle_plate = 'PL' || lpad((id % 3000)::text, 5, '0')"
        )
        cursor.execute(
            "INSERT INTO reservations_reservationevent"
            " (reservation_id, from_status, to_status, actor, actor_user_id, at, data)"
            " SELECT id, '', status, 'driver', user_id, created_at, '{}'::jsonb"
            " FROM reservations_reservation"
        )
        cursor.execute("ANALYZE reservations_reservationevent")
        cursor.execute("ANALYZE reservations_reservation")
    return Reservation.objects.order_by("pk").first()


def _plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def _reads_only_what_it_shows(client, model, params: dict, *, table: str) -> list:
    """The rows of a changelist page, after checking that the page asked the
    table for its rows and their count only, by index."""
    client.force_login(User.objects.create_superuser(email="boss@example.com", password="x-pw-1"))
    with CaptureQueriesContext(connection) as queries:
        response = client.get(admin_url(model, "changelist"), params)
    assert response.status_code == 200
    reading = [q["sql"] for q in queries.captured_queries if f'FROM "{table}"' in q["sql"]]
    # The page and its count at most (none when nothing can match), and
    # nothing else: no list of every year or lot.
    assert len(reading) <= 2, reading
    for sql in reading:
        counts_a_whole_list = sql.startswith("SELECT COUNT(*)") and "q" not in params
        if not counts_a_whole_list:  # counting all of a list reads it, as it must
            assert f"Seq Scan on {table}" not in _plan(sql), sql
    return list(response.context["cl"].result_list)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"status__exact": "completed"},
        {"q": "first-code"},
        {"q": "PL-0012"},
        {"q": "driver17@exam"},
        {"q": "nothing-like-it"},
    ],
    ids=["list", "by-status", "code", "plate", "e-mail", "no-match"],
)
def test_a_page_of_the_reservation_list_reads_only_what_it_shows(client, long_history, params):
    if params.get("q") == "first-code":
        params = {"q": long_history.code.lower()}
    found = _reads_only_what_it_shows(client, Reservation, params, table="reservations_reservation")
    assert bool(found) == (params.get("q") != "nothing-like-it")
    if params.get("q") == long_history.code.lower():
        assert found == [long_history]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"to_status__exact": "completed"},
        {"q": "first-code"},
        {"q": "driver17@exam"},
        {"q": "nothing-like-it"},
    ],
    ids=["list", "by-status", "code", "e-mail", "no-match"],
)
def test_a_page_of_the_event_list_reads_only_what_it_shows(client, long_history, params):
    if params.get("q") == "first-code":
        params = {"q": long_history.code.lower()}
    found = _reads_only_what_it_shows(
        client, ReservationEvent, params, table="reservations_reservationevent"
    )
    assert bool(found) == (params.get("q") != "nothing-like-it")
    if params.get("q") == long_history.code.lower():
        assert [event.reservation_id for event in found] == [long_history.pk]
