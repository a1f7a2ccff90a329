"""The staff's lists of reservations, their events, idempotency keys, payments
and Stripe's events stay quick on a year of history: each page reads the rows
it shows, by an index, never the whole table (a year of 100 lots took 10 to
22 s a reservation page: the whole table sorted, its years listed, its lots
listed, searched with "contains")."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench import database
from config.admin_paging import COUNT_CAP
from parking.models import User
from payments.models import Payment, StripeEvent
from reservations.models import IdempotencyKey, Reservation, ReservationEvent
from tests.factories import LotFactory, RateFactory, SpotFactory
from tests.lots.test_admin import admin_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def long_history(db):
    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory.create_batch(40, lot=lot)
    # Drivers enough that reading all of them shows; 200 of them (as many as
    # the bench's) share the history, each a small part of it.
    User.objects.bulk_create(User(email=f"driver{i}@example.com") for i in range(20_000))
    drivers = list(User.objects.order_by("pk").values_list("pk", flat=True)[:200])
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
        cursor.execute(
            "INSERT INTO reservations_idempotencykey"
            " (user_id, key, fingerprint, reservation_id, created_at)"
            " SELECT user_id, md5(id::text), md5(code), id, created_at"
            " FROM reservations_reservation"
        )
        cursor.execute(
            "INSERT INTO payments_stripeevent"
            " (event_id, type, object_id, received_at, payload)"
            " SELECT 'evt_' || id, 'payment_intent.succeeded', 'pi_' || id, created_at, '{}'"
            " FROM reservations_reservation"
        )
    Payment.objects.bulk_create(
        Payment(
            reference=f"reservation:{code}",
            user_id=user_id,
            amount=amount,
            currency=currency,
            payment_intent_id=f"pi_{pk}",
        )
        for pk, code, user_id, amount, currency in Reservation.objects.values_list(
            "pk", "code", "user_id", "price_amount", "currency"
        )
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE payments_payment")
        cursor.execute("ANALYZE payments_stripeevent")
        cursor.execute("ANALYZE reservations_idempotencykey")
        cursor.execute("ANALYZE reservations_reservation")
        cursor.execute("ANALYZE parking_user")
    return Reservation.objects.order_by("pk").first()


def _plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def _reads_only_what_it_shows(client, model, params: dict, *, table: str) -> list:
    """The rows of a changelist page, after checking that the page asked the
    table for its rows and their count only, by index."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(admin_url(model, "changelist"), params)
    assert response.status_code == 200
    reading = [q["sql"] for q in queries.captured_queries if f'FROM "{table}"' in q["sql"]]
    # The page and its count at most (none when nothing can match), and
    # nothing else: no list of every year, lot or currency, no second count.
    assert len(reading) <= 2, (params, reading)
    for sql in reading:
        if sql.startswith("SELECT COUNT(*)"):  # counted up to the cap (config/admin_paging.py)
            assert f"LIMIT {COUNT_CAP + 1}" in sql, (params, sql)
        counts_a_whole_list = sql.startswith("SELECT COUNT(*)") and "q" not in params
        if not counts_a_whole_list:  # counting all of a list reads it, as it must
            assert f"Seq Scan on {table}" not in _plan(sql), (params, sql)
    # Whose e-mail starts with the term: by the e-mail's index, not every user.
    for sql in [q["sql"] for q in queries.captured_queries if "LIKE" in q["sql"]]:
        if 'FROM "parking_user"' in sql:
            assert "Seq Scan on parking_user" not in _plan(sql), (params, sql)
    return list(response.context["cl"].result_list)


def test_each_page_of_the_staff_lists_reads_only_what_it_shows(client, long_history):
    # One year of history for all the lists (it takes seconds to build).
    client.force_login(User.objects.create_superuser(email="boss@example.com", password="x-pw-1"))
    code = long_history.code
    typed = code.lower().replace("-", "")  # as staff may type it
    intent = Payment.objects.order_by("pk")[17].payment_intent_id
    lists = {
        Reservation: [{"status__exact": "completed"}, {"q": "PL-0012"}],
        ReservationEvent: [{"to_status__exact": "completed"}],
        IdempotencyKey: [],
        Payment: [{"status__exact": "requires_payment_method"}, {"q": intent}],
    }
    for model, own in lists.items():
        table = model._meta.db_table
        for params in [{}, *own, {"q": "driver17@exam"}]:
            assert _reads_only_what_it_shows(client, model, params, table=table), params
        assert not _reads_only_what_it_shows(client, model, {"q": "no-such"}, table=table)
        found = _reads_only_what_it_shows(client, model, {"q": typed}, table=table)
        if model is Reservation:
            assert found == [long_history]
        elif model is Payment:
            assert [payment.reference for payment in found] == [f"reservation:{code}"]
        else:
            assert [row.reservation_id for row in found] == [long_history.pk]
    # Stripe's events by their own id or by what they are about, as pasted.
    table = StripeEvent._meta.db_table
    for params in [{}, {"type": "payment_intent.succeeded"}, {"q": "no-such"}]:
        _reads_only_what_it_shows(client, StripeEvent, params, table=table)
    for term, about in [(f"evt_{long_history.pk}", f"pi_{long_history.pk}"), (intent, intent)]:
        found = _reads_only_what_it_shows(client, StripeEvent, {"q": term}, table=table)
        assert [event.object_id for event in found] == [about]
