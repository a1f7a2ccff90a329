"""Stripe's ids are looked up whole: one index each, none for LIKE."""

import pytest
from django.db import connection

pytestmark = pytest.mark.postgres


def _indexes_on(table: str, column: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s"
            " ORDER BY indexname",
            [table, f"%({column}%"],
        )
        return [name for (name,) in cursor.fetchall()]


def test_webhooks_and_payments_write_one_index_entry_per_stripe_id(db):
    # Django's pattern indexes beside them (migration 0005) served no query and
    # cost every webhook and payment a write.
    assert _indexes_on("payments_stripeevent", "event_id") == ["payments_stripeevent_event_id_key"]
    (intent_index,) = _indexes_on("payments_payment", "payment_intent_id")
    assert not intent_index.endswith("_like"), intent_index


def test_stripe_events_are_found_by_what_they_are_about_on_an_index(db):
    assert _indexes_on("payments_stripeevent", "object_id") == ["stripe_event_object"]
