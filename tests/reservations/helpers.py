"""Helpers for reservation tests: book through the real service, check overlaps in SQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from reservations.models import BLOCKING_STATUSES, Reservation
from reservations.services import reservation_create


def book(
    user, lot, *, start: datetime | None = None, hours: float = 2, vehicle_type: str = "car", **kw
) -> Reservation:
    start = start or timezone.now() + timedelta(hours=1)
    return reservation_create(
        user=user,
        lot_id=lot.slug,
        vehicle_type=vehicle_type,
        start=start,
        end=start + timedelta(hours=hours),
        **kw,
    ).reservation


def overlapping_pairs() -> int:
    """Pairs of blocking reservations of one spot whose [start, occupied_until) meet.

    Plain SQL, independent of the code under test and of the exclusion constraint.
    """
    statuses = ", ".join(f"'{s}'" for s in BLOCKING_STATUSES)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT COUNT(*) FROM reservations_reservation a
            JOIN reservations_reservation b
              ON a.spot_id = b.spot_id AND a.id < b.id
             AND a.start < b.occupied_until AND b.start < a.occupied_until
            WHERE a.status IN ({statuses}) AND b.status IN ({statuses})
            """  # noqa: S608  (constants only)
        )
        return cursor.fetchone()[0]
