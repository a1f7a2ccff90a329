"""A year of history must not slow a booking down: the prepared (generic)
plans PostgreSQL settles on after five runs read a spot's bookings around the
window, never its whole history."""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bench import database
from reservations import hot_sql
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory


def _generic_plan(sql: str, params: dict) -> str:
    """EXPLAIN of `sql` (psycopg's %(name)s placeholders) prepared as PostgreSQL
    would keep it: one generic plan for any values."""
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
    prepared = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m[1]) + 1}", sql)
    values = []
    for name in names:  # literals of our own making, not input
        value = params[name]
        values.append("NULL" if value is None else f"'{value}'")
    with connection.cursor() as cursor:
        cursor.execute(f"PREPARE long_history_pick AS {prepared}")
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        try:
            cursor.execute(f"EXPLAIN EXECUTE long_history_pick({', '.join(values)})")
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET plan_cache_mode")
            cursor.execute("DEALLOCATE long_history_pick")


@pytest.mark.postgres
def test_picking_a_spot_reads_its_bookings_around_the_window_not_its_history(db):
    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory.create_batch(40, lot=lot)
    users = [UserFactory().pk for _ in range(3)]
    now = timezone.now()
    # A year of settled history, a booking a day per spot, as the bench's long one.
    database._long_history([lot.pk], 365, users, now=now, rng=random.Random(5))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reservations_reservation")
    start = now + timedelta(days=3)
    params = hot_sql._pick_params(
        lot_pk=lot.pk, vehicle_type="car", start=start, end=start + timedelta(hours=2), now=now
    )

    for template in (hot_sql._PICK_BEST, hot_sql._PICK_ANY):
        plan = _generic_plan(hot_sql._pick_sql(template, exclude=[], wait=False), params)

        # Whether a spot is free: its bookings from the last one back, by
        # (spot, occupied_until), never every booking of the spot.
        assert "reservation_spot_until" in plan, plan
        assert "reservations_reservation_spot_id" not in plan, plan


@pytest.mark.postgres
def test_a_booking_writes_one_index_entry_for_its_code(db):
    # Django's pattern index beside the unique one (migration 0021) served no
    # query and cost each booking an insert at a random page of a large index.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'reservations_reservation'"
            " AND indexdef LIKE '%(code%'"
        )
        on_code = [name for (name,) in cursor.fetchall()]
    assert on_code == ["reservations_reservation_code_key"], on_code
