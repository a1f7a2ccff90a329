"""Hand-written SQL for the two hottest paths: availability and spot picking.

At 1,000 requests a second the ORM's cost of building a query (about half a
millisecond of Python each, more for subquery expressions) is what decides, so
these run as constant SQL strings that work on PostgreSQL and SQLite alike.
They say exactly what reservations/allocation.py says with the ORM; the tests
compare the two on the same data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.utils.dateparse import parse_datetime

from reservations.models import BLOCKING_STATUSES, Status

_BLOCKING = ", ".join(f"'{s}'" for s in BLOCKING_STATUSES)
_PENDING = f"'{Status.PENDING_PAYMENT}'"
_PARKED = f"'{Status.PARKED}'"

# Reservation x keeps its spot from being booked over [start, end), as of now:
# a blocking state, minus holds that have lapsed; it holds [x.start,
# x.occupied_until), and a car still parked after its end holds the spot until
# it leaves, whenever that is. Parameters: end, start, now, now.
_HOLDS = f"""x.status IN ({_BLOCKING})
      AND x.start < %s
      AND (x.occupied_until > %s OR (x.status = {_PARKED} AND x."end" <= %s))
      AND NOT (x.status = {_PENDING} AND x.hold_expires_at <= %s)"""

# Spot s is taken over the window. Parameters: as _HOLDS.
_TAKEN = f"""
    SELECT 1 FROM reservations_reservation x
    WHERE x.spot_id = s.id AND {_HOLDS}
"""  # noqa: S608  (constants only; values are parameters)

# Rate, number of spots free for the whole window, and the first moments the
# answer may stop being true without a booking: a hold counted as taken lapses,
# or a parked car reaches its end and, if it stays, holds its spot from then on.
# A spot is taken as _TAKEN says, split in two so that each half has an index
# that answers it whatever the history: a booking still to end after the
# window's start (reservation_spot_until: a spot's past bookings are never
# visited, where "start < end of window" matched all of them), or a car parked
# beyond its end (reservation_parked_end: only cars overstaying now).
# Parameters: lot, type, start, end, now, now, end, lot, type, now, end, start,
# lot, type, now, lot, type.
AVAILABILITY = f"""
SELECT r.hourly_amount, r.daily_max_amount,
  (SELECT COUNT(*) FROM lots_spot s
    WHERE s.lot_id = %s AND s.vehicle_type = %s AND s.is_active
      AND NOT EXISTS (
        SELECT 1 FROM reservations_reservation x
        WHERE x.spot_id = s.id AND x.status IN ({_BLOCKING})
          AND x.occupied_until > %s AND x.start < %s
          AND NOT (x.status = {_PENDING} AND x.hold_expires_at <= %s))
      AND s.id NOT IN (
        SELECT x.spot_id FROM reservations_reservation x
        WHERE x.status = {_PARKED} AND x."end" <= %s AND x.start < %s)) AS free,
  (SELECT MIN(x.hold_expires_at) FROM reservations_reservation x
    WHERE x.lot_id = %s AND x.vehicle_type = %s AND x.status = {_PENDING}
      AND x.hold_expires_at > %s AND x.start < %s AND x.occupied_until > %s) AS first_lapse,
  (SELECT MIN(x."end") FROM reservations_reservation x
    WHERE x.lot_id = %s AND x.vehicle_type = %s AND x.status = {_PARKED}
      AND x."end" > %s) AS first_overstay
FROM lots_rate r
WHERE r.lot_id = %s AND r.vehicle_type = %s
"""  # noqa: S608  (constants only; values are parameters)

LOT_VERSION = """
SELECT id, availability_version, currency FROM lots_lot WHERE slug = %s AND is_active
"""


def _db_time(moment: datetime):
    # SQLite stores datetimes as UTC text: adapt as the ORM would.
    return connection.ops.adapt_datetimefield_value(moment)


def _py_time(value) -> datetime | None:
    if value is None:
        return None
    # SQLite hands back naive UTC datetimes, or text for computed columns.
    parsed = value if isinstance(value, datetime) else parse_datetime(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def lot_version(slug: str) -> tuple[int, int, str] | None:
    """(lot pk, availability version, currency) of an active lot, or None."""
    if "\x00" in slug:
        return None
    with connection.cursor() as cursor:
        cursor.execute(LOT_VERSION, [slug])
        return cursor.fetchone()


@contextmanager
def _planned_each_time() -> Iterator[None]:
    """Run the statement inside unprepared: planned for its own values.

    Prepared, PostgreSQL switches to a generic plan after five runs, and without
    the window's values the generic plan probes a spot's bookings by spot alone:
    with a year of history that visited 54,000 buffers an answer (40 ms) where the
    plan for the values visits about 1,200 (reservation_spot_until). Planning
    each time costs far less than that."""
    raw = connection.connection if connection.vendor == "postgresql" else None
    if raw is None or not hasattr(raw, "prepare_threshold"):
        yield
        return
    threshold = raw.prepare_threshold
    raw.prepare_threshold = None
    try:
        yield
    finally:
        raw.prepare_threshold = threshold


def availability(
    *, lot_pk: int, vehicle_type: str, start: datetime, end: datetime, now: datetime
) -> tuple[int, int, int, datetime | None] | None:
    """(hourly, daily max, free spots, first change), or None without a rate.
    The first change is when the answer may stop being true though nothing was
    booked (a hold lapses, a parked car starts to overstay)."""
    s, e, n = _db_time(start), _db_time(end), _db_time(now)
    params = [
        *(lot_pk, vehicle_type, s, e, n, n, e),
        *(lot_pk, vehicle_type, n, e, s),
        *(lot_pk, vehicle_type, n),
        *(lot_pk, vehicle_type),
    ]
    with connection.cursor() as cursor, _planned_each_time():
        cursor.execute(AVAILABILITY, params)
        row = cursor.fetchone()
    if row is None:
        return None
    hourly, daily_max, free, first_lapse, first_overstay = row
    changes = [t for t in (_py_time(first_lapse), _py_time(first_overstay)) if t is not None]
    return hourly, daily_max, free, min(changes, default=None)


# Stand-in for "no booking on that side": far enough that any real gap is smaller.
_HORIZON_DAYS = 400

_NEIGHBOUR = f"""
    FROM reservations_reservation x
    WHERE x.spot_id = s.id AND x.status IN ({_BLOCKING})
      AND NOT (x.status = {_PENDING} AND x.hold_expires_at <= %s)
"""

# Free spots for the window, best fit first (see allocation.best_fit_spots): the
# smallest span between the previous booking's end and the next one's start.
# Parameters: lot, type, end, start, now, now, [excluded ids…], then for the
# span now, end, far end, now, start, far start.
_PICK = """
SELECT s.id, s.lot_id, s.public_id, s.label, s.vehicle_type, s.is_active
FROM lots_spot s
WHERE s.lot_id = %s AND s.vehicle_type = %s AND s.is_active
  AND NOT EXISTS ({taken}) {exclude}
ORDER BY {span}, s.label
LIMIT 1 {lock}
"""
_NEXT_START = f"COALESCE((SELECT MIN(x.start) {_NEIGHBOUR} AND x.start >= %s), %s)"
_PREVIOUS_END = (
    f"COALESCE((SELECT MAX(x.occupied_until) {_NEIGHBOUR} AND x.occupied_until <= %s), %s)"
)
_SPAN = {
    "postgresql": f"({_NEXT_START} - {_PREVIOUS_END})",
    "sqlite": f"(julianday({_NEXT_START}) - julianday({_PREVIOUS_END}))",
}
SPOT_COLUMNS = ["id", "lot_id", "public_id", "label", "vehicle_type", "is_active"]


def pick_spot(
    *,
    lot_pk: int,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    now: datetime,
    exclude: list[int],
    wait: bool,
) -> tuple | None:
    """The best-fit free spot's row (SPOT_COLUMNS), locked on PostgreSQL: past
    spots another booking is locking, or, with `wait`, waiting for them."""
    horizon = timedelta(days=_HORIZON_DAYS)
    s, e, n = _db_time(start), _db_time(end), _db_time(now)
    vendor = connection.vendor
    lock = ""
    if connection.features.has_select_for_update:
        lock = "FOR UPDATE" if wait else "FOR UPDATE SKIP LOCKED"
    sql = _PICK.format(
        taken=_TAKEN,
        exclude=f"AND s.id NOT IN ({', '.join(['%s'] * len(exclude))})" if exclude else "",
        span=_SPAN["postgresql" if vendor == "postgresql" else "sqlite"],
        lock=lock,
    )
    params = [
        lot_pk,
        vehicle_type,
        e,
        s,
        n,
        n,
        *exclude,
        n,
        e,
        _db_time(end + horizon),
        n,
        s,
        _db_time(start - horizon),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


BOOKING_RATE = """
SELECT r.hourly_amount, r.daily_max_amount, l.id, l.slug, l.name, l.timezone, l.currency,
  l.no_show_grace_minutes
FROM lots_rate r JOIN lots_lot l ON l.id = r.lot_id
WHERE l.slug = %s AND l.is_active AND r.vehicle_type = %s
"""
BOOKING_LOT_COLUMNS = ["id", "slug", "name", "timezone", "currency", "no_show_grace_minutes"]


def booking_rate(*, slug: str, vehicle_type: str) -> tuple | None:
    """(hourly, daily max, *BOOKING_LOT_COLUMNS) of an active lot's rate, or None."""
    if "\x00" in slug:
        return None
    with connection.cursor() as cursor:
        cursor.execute(BOOKING_RATE, [slug, vehicle_type])
        return cursor.fetchone()


# Lapsed holds included: the caller expires those it meets.
_OVERLAPPING = f"""
SELECT x.id, x.status, x.hold_expires_at FROM reservations_reservation x
WHERE x.spot_id = %s AND x.status IN ({_BLOCKING}) AND x.start < %s
  AND (x.occupied_until > %s OR (x.status = {_PARKED} AND x."end" <= %s))
"""  # noqa: S608  (constants only)


def overlapping_on_spot(
    *, spot_pk: int, start: datetime, end: datetime, now: datetime
) -> list[tuple]:
    """(id, status, hold expiry) of blocking reservations that hold the spot over
    the window (see _HOLDS), lapsed holds included; locked on PostgreSQL."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    params = [spot_pk, _db_time(end), _db_time(start), _db_time(now)]
    with connection.cursor() as cursor:
        cursor.execute(_OVERLAPPING + lock, params)
        return [(pk, status, _py_time(held)) for pk, status, held in cursor.fetchall()]


def booking_locks(*, user_pk: int, plate: str) -> None:
    """Serialise, until the transaction ends, the bookings of one driver and of
    one plate, so that their limits (unpaid holds, one place at a time) cannot
    be passed by racing requests: transaction-scoped advisory locks, both in
    one round trip, on PostgreSQL; SQLite's IMMEDIATE transactions serialise
    every write already."""
    if connection.vendor != "postgresql":
        return
    keys = [f"driver:{user_pk}"] + ([f"plate:{plate}"] if plate else [])
    locks = ", ".join("pg_advisory_xact_lock(hashtext(%s))" for _ in keys)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {locks}", keys)


_UNPAID_HOLDS = f"""
SELECT COUNT(*) FROM reservations_reservation
WHERE user_id = %s AND status = {_PENDING} AND hold_expires_at > %s
"""  # noqa: S608  (constants only)


def unpaid_holds(*, user_pk: int, now: datetime) -> int:
    """How many of the driver's bookings hold a spot unpaid right now."""
    with connection.cursor() as cursor:
        cursor.execute(_UNPAID_HOLDS, [user_pk, _db_time(now)])
        return cursor.fetchone()[0]


# A car still parked after its end is somewhere until it leaves: for its plate,
# as far ahead as the overstay sweep holds its spot (its horizon), not forever,
# or a missed exit would keep its driver from booking anywhere ever again.
_PLATE_BUSY = f"""
SELECT x.id FROM reservations_reservation x
WHERE x.vehicle_plate = %s AND x.status IN ({_BLOCKING}) AND x.start < %s
  AND (x.occupied_until > %s {{overstaying}})
  AND NOT (x.status = {_PENDING} AND x.hold_expires_at <= %s)
LIMIT 1
"""  # noqa: S608  (constants only)
_PLATE_BUSY_SOON = _PLATE_BUSY.format(overstaying=f'OR (x.status = {_PARKED} AND x."end" <= %s)')
_PLATE_BUSY_LATER = _PLATE_BUSY.format(overstaying="")


def plate_busy(
    *, plate: str, start: datetime, end: datetime, now: datetime, horizon: datetime
) -> bool:
    """Whether the vehicle already holds a spot, anywhere, over part of [start, end);
    a car parked past its end counts as there until `horizon`."""
    n = _db_time(now)
    if start < horizon:
        sql, params = _PLATE_BUSY_SOON, [plate, _db_time(end), _db_time(start), n, n]
    else:
        sql, params = _PLATE_BUSY_LATER, [plate, _db_time(end), _db_time(start), n]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


_CAR_PARKED_IN = f"""
SELECT 1 FROM reservations_reservation WHERE spot_id = %s AND status = {_PARKED} AND id <> %s
LIMIT 1
"""  # noqa: S608  (constants only)


def car_parked_in(*, spot_pk: int, other_than: int) -> bool:
    """Whether another reservation's car is in the spot now (it has not left)."""
    with connection.cursor() as cursor:
        cursor.execute(_CAR_PARKED_IN, [spot_pk, other_than])
        return cursor.fetchone() is not None


_FOLLOWING_START = f"""
SELECT MIN(start) FROM reservations_reservation
WHERE spot_id = %s AND status IN ({_BLOCKING}) AND start >= %s AND id <> %s
  AND NOT (status = {_PENDING} AND hold_expires_at <= %s)
"""  # noqa: S608  (constants only)


def next_blocking_start(
    *, spot_pk: int, after: datetime, other_than: int, now: datetime
) -> datetime | None:
    """The start of the first booking that holds the spot at or after `after`
    (lapsed unpaid holds do not count)."""
    params = [spot_pk, _db_time(after), other_than, _db_time(now)]
    with connection.cursor() as cursor:
        cursor.execute(_FOLLOWING_START, params)
        return _py_time(cursor.fetchone()[0])


_KEY_INSERT = """
INSERT INTO reservations_idempotencykey (user_id, key, fingerprint, reservation_id, created_at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (user_id, key) DO NOTHING
"""


def idempotency_key_insert(
    *, user_pk: int, key: str, fingerprint: str, reservation_pk: int, now: datetime
) -> bool:
    """Remember which booking a client's key made; False if the key is taken
    (on PostgreSQL this waits for a twin request still in flight to finish)."""
    with connection.cursor() as cursor:
        cursor.execute(_KEY_INSERT, [user_pk, key, fingerprint, reservation_pk, _db_time(now)])
        return cursor.rowcount == 1
