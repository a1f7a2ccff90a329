"""Hand-written SQL for the two hottest paths: availability and booking.

At 1,000 requests a second the ORM's cost of building a query (about half a
millisecond of Python each, more for subquery expressions) is what decides, so
these run as constant SQL strings that work on PostgreSQL and SQLite alike.
They say exactly what reservations/allocation.py says with the ORM; the tests
compare the two on the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from django.db import connection, models
from django.utils.dateparse import parse_datetime

from config.db_router import read_connection
from lots.features import FEATURE_FIELDS, NO_NEEDS, SCARCE_FEATURES, SpotNeeds
from reservations.models import BLOCKING_STATUSES, Reservation, ReservationEvent, Status

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

# A closure (models.Closure) of the lot, in force, over part of the window.
# The lot's closures still to end (closure_lot_in_force): nearly always none.
_CLOSURE_OVER = """c.lot_id = {lot} AND c.lifted_at IS NULL
        AND c.ends_at > {start} AND c.starts_at < {end}"""
# Spot s is not closed over the window: neither its whole lot nor the spot
# itself. Both subqueries are uncorrelated: asked once, not once a spot.
_NOT_CLOSED = """NOT EXISTS (
      SELECT 1 FROM reservations_closure c WHERE c.whole_lot AND {over})
  AND s.id NOT IN (
      SELECT cs.spot_id FROM reservations_closure c
      JOIN reservations_closure_spots cs ON cs.closure_id = c.id WHERE {over})"""


def _not_closed(*, lot: str, start: str, end: str) -> str:
    return _NOT_CLOSED.format(over=_CLOSURE_OVER.format(lot=lot, start=start, end=end))


_CLOSURE_OVER_NAMED = _CLOSURE_OVER.format(lot="%(lot)s", start="%(start)s", end="%(end)s")
_NOT_CLOSED_NAMED = _NOT_CLOSED.format(over=_CLOSURE_OVER_NAMED)


# SQLite: rate, number of spots free for the whole window, and the first moments the
# answer may stop being true without a booking: a hold counted as taken lapses,
# or a parked car reaches its end and, if it stays, holds its spot from then on.
# A spot is taken as _TAKEN says, split in two so that each half has an index
# that answers it whatever the history: a booking still to end after the
# window's start (reservation_spot_until: a spot's past bookings are never
# visited, where "start < end of window" matched all of them), or a car parked
# beyond its end (reservation_parked_end: only cars overstaying now).
# Parameters: lot, type, start, end, now, now, end, lot, start, end, lot, start,
# end, lot, type, now, end, start, lot, type, now, lot, type.
AVAILABILITY = f"""
SELECT r.hourly_amount, r.daily_max_amount,
  EXISTS (SELECT 1 FROM lots_raterule rr WHERE rr.lot_id = r.lot_id AND rr.is_active
    AND rr.vehicle_type IN ('', r.vehicle_type)) AS has_rules,
  (SELECT COUNT(*) FROM lots_spot s
    WHERE s.lot_id = %s AND s.vehicle_type = %s AND s.is_active {{needs}}
      AND NOT EXISTS (
        SELECT 1 FROM reservations_reservation x
        WHERE x.spot_id = s.id AND x.status IN ({_BLOCKING})
          AND x.occupied_until > %s AND x.start < %s
          AND NOT (x.status = {_PENDING} AND x.hold_expires_at <= %s))
      AND s.id NOT IN (
        SELECT x.spot_id FROM reservations_reservation x
        WHERE x.status = {_PARKED} AND x."end" <= %s AND x.start < %s)
      AND {_not_closed(lot="%s", start="%s", end="%s")}) AS free,
  (SELECT MIN(x.hold_expires_at) FROM reservations_reservation x
    WHERE x.lot_id = %s AND x.vehicle_type = %s AND x.status = {_PENDING}
      AND x.hold_expires_at > %s AND x.start < %s AND x.occupied_until > %s) AS first_lapse,
  (SELECT MIN(x."end") FROM reservations_reservation x
    WHERE x.lot_id = %s AND x.vehicle_type = %s AND x.status = {_PARKED}
      AND x."end" > %s) AS first_overstay
FROM lots_rate r
WHERE r.lot_id = %s AND r.vehicle_type = %s
"""  # noqa: S608  (constants only; values are parameters)

# PostgreSQL counts the other way round: the lot's spots of the type, minus
# those busy over the window, found by the bookings that overlap it
# (reservation_lot_busy, a GiST index on the lot and the booked range: a
# handful of rows whatever the lot's size or history, where probing each spot
# costs an index look-up a spot), the lot's cars overstaying now, and its
# closed spots (all of them when the whole lot is closed). Ids are
# compared as bigint: psycopg sends a small int as smallint, which the GiST
# index (btree_gist) cannot compare with its bigint column. Planned once per
# connection: its generic plan is the plan for any values.
AVAILABILITY_BY_RANGE = f"""
SELECT r.hourly_amount, r.daily_max_amount,
  EXISTS (SELECT 1 FROM lots_raterule rr WHERE rr.lot_id = r.lot_id AND rr.is_active
    AND rr.vehicle_type IN ('', r.vehicle_type)) AS has_rules,
  (SELECT COUNT(*) FROM lots_spot s
    WHERE s.lot_id = %(lot)s AND s.vehicle_type = %(type)s AND s.is_active {{needs}})
  - (SELECT COUNT(*) FROM (
      SELECT x.spot_id FROM reservations_reservation x
      WHERE x.lot_id = %(lot)s::bigint AND x.status IN ({_BLOCKING})
        AND tstzrange(x.start, x.occupied_until, '[)') && tstzrange(%(start)s, %(end)s, '[)')
        AND NOT (x.status = {_PENDING} AND x.hold_expires_at <= %(now)s)
      UNION
      SELECT x.spot_id FROM reservations_reservation x
      WHERE x.lot_id = %(lot)s AND x.status = {_PARKED} AND x."end" <= %(now)s
        AND x.start < %(end)s
      UNION
      SELECT cs.spot_id FROM reservations_closure c
      JOIN reservations_closure_spots cs ON cs.closure_id = c.id WHERE {_CLOSURE_OVER_NAMED}
      UNION
      SELECT s.id FROM lots_spot s WHERE s.lot_id = %(lot)s AND s.vehicle_type = %(type)s
        AND EXISTS (SELECT 1 FROM reservations_closure c
          WHERE c.whole_lot AND {_CLOSURE_OVER_NAMED})) AS busy
    JOIN lots_spot s ON s.id = busy.spot_id
    WHERE s.lot_id = %(lot)s AND s.vehicle_type = %(type)s AND s.is_active {{needs}}) AS free,
  (SELECT MIN(x.hold_expires_at) FROM reservations_reservation x
    WHERE x.lot_id = %(lot)s AND x.vehicle_type = %(type)s AND x.status = {_PENDING}
      AND x.hold_expires_at > %(now)s AND x.start < %(end)s
      AND x.occupied_until > %(start)s) AS first_lapse,
  (SELECT MIN(x."end") FROM reservations_reservation x
    WHERE x.lot_id = %(lot)s AND x.vehicle_type = %(type)s AND x.status = {_PARKED}
      AND x."end" > %(now)s) AS first_overstay
FROM lots_rate r
WHERE r.lot_id = %(lot)s AND r.vehicle_type = %(type)s
"""  # noqa: S608  (constants only; values are parameters)

# Both as every question without spot features asks them ({needs} is where
# _availability_sql adds the features' conditions).
AVAILABILITY_PLAIN = AVAILABILITY.format(needs="")
AVAILABILITY_BY_RANGE_PLAIN = AVAILABILITY_BY_RANGE.format(needs="")


@lru_cache(maxsize=64)
def _availability_sql(*, postgresql: bool, features: tuple[str, ...], height: str) -> str:
    """AVAILABILITY(_BY_RANGE) counting only the spots that have the features
    and room for the vehicle (needs_sql); without them, the statement as it was."""
    template = AVAILABILITY_BY_RANGE if postgresql else AVAILABILITY
    return template.format(needs=needs_sql(features, height=height))


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
    # A replica's under reading_replica() (config/db_router.py), else the leader's.
    with read_connection().cursor() as cursor:
        cursor.execute(LOT_VERSION, [slug])
        return cursor.fetchone()


def availability(
    *,
    lot_pk: int,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    now: datetime,
    needs: SpotNeeds = NO_NEEDS,
) -> tuple[int, int, bool, int, datetime | None] | None:
    """(hourly, daily max, whether rate rules apply, free spots, first change), or
    None without a rate; with `needs`, only spots that have them count. The first
    change is when the answer may stop being true though nothing was booked (a
    hold lapses, a parked car starts to overstay)."""
    s, e, n = _db_time(start), _db_time(end), _db_time(now)
    reader = read_connection()  # a replica's under reading_replica() (config/db_router.py)
    postgresql = reader.vendor == "postgresql"
    sql = AVAILABILITY_BY_RANGE_PLAIN if postgresql else AVAILABILITY_PLAIN
    if needs:
        # SQLite's statement takes positional parameters: the height, an int
        # checked by spot_needs, goes in as a literal there.
        tall = "" if needs.height_cm is None else "%(height)s"
        if tall and not postgresql:
            tall = str(int(needs.height_cm))
        sql = _availability_sql(postgresql=postgresql, features=needs.features, height=tall)
    if postgresql:
        params = {"lot": lot_pk, "type": vehicle_type, "start": s, "end": e, "now": n}
        params["height"] = needs.height_cm
        with reader.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    else:
        params = [
            *(lot_pk, vehicle_type, s, e, n, n, e),
            *(lot_pk, s, e, lot_pk, s, e),  # closures
            *(lot_pk, vehicle_type, n, e, s),
            *(lot_pk, vehicle_type, n),
            *(lot_pk, vehicle_type),
        ]
        with reader.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    if row is None:
        return None
    hourly, daily_max, has_rules, free, first_lapse, first_overstay = row
    changes = [t for t in (_py_time(first_lapse), _py_time(first_overstay)) if t is not None]
    return hourly, daily_max, bool(has_rules), free, min(changes, default=None)


# Stand-in for "no booking on that side": far enough that any real gap is smaller.
_HORIZON_DAYS = 400

# How many bookings on each side of the window name the spots that best fit is
# chosen from (see allocation.NEIGHBOURS).
NEIGHBOURS = 8

# Reservation x holds its spot now: a blocking state, minus lapsed holds.
_LIVE = f"""x.status IN ({_BLOCKING})
      AND NOT (x.status = {_PENDING} AND x.hold_expires_at <= %(now)s)"""

# Spot s is free over the window and not closed (as _TAKEN says, written so
# that each part is one index range: the bookings still running at the
# window's start, by (spot, occupied_until), never the spot's history; and the
# lot's overstaying cars, a handful, read once).
# "No live booking starting before the window's end runs past its start",
# asked as "the latest-running such booking ends by the start": ORDER BY
# occupied_until DESC LIMIT 1 walks reservation_spot_until from the spot's last
# booking back, and stops at the first that starts before the end. As NOT
# EXISTS, the prepared (generic) plan of a long history took the spot's plain
# foreign-key index instead and read its whole history (311 rows a spot, 47,000
# pages a booking on a year of history).
_FREE = f"""NOT COALESCE((
      SELECT x.occupied_until > %(start)s FROM reservations_reservation x
      WHERE x.spot_id = s.id AND {_LIVE} AND x.start < %(end)s
      ORDER BY x.occupied_until DESC LIMIT 1), FALSE)
  AND s.id NOT IN (
      SELECT x.spot_id FROM reservations_reservation x
      WHERE x.lot_id = %(lot)s AND x.vehicle_type = %(type)s AND x.status = {_PARKED}
        AND x."end" <= %(now)s AND x.start < %(end)s)
  AND {_NOT_CLOSED_NAMED}"""  # noqa: S608  (constants only)

# The spots of the NEIGHBOURS bookings of the lot and type that end last before
# the window starts, and of those that start first after it ends: two short
# index ranges, whatever the lot's size or the length of its history.
_NEIGHBOUR_SPOTS = f"""
  SELECT spot_id FROM (
    SELECT x.spot_id FROM reservations_reservation x
    WHERE x.lot_id = %(lot)s AND x.vehicle_type = %(type)s AND {_LIVE}
      AND x.occupied_until <= %(start)s
    ORDER BY x.occupied_until DESC, x.id DESC LIMIT {NEIGHBOURS}) AS before_window
  UNION
  SELECT spot_id FROM (
    SELECT x.spot_id FROM reservations_reservation x
    WHERE x.lot_id = %(lot)s AND x.vehicle_type = %(type)s AND {_LIVE}
      AND x.start >= %(end)s
    ORDER BY x.start, x.id LIMIT {NEIGHBOURS}) AS after_window
"""  # noqa: S608  (constants only)

_NEXT_START = f"""COALESCE((SELECT MIN(x.start) FROM reservations_reservation x
    WHERE x.spot_id = s.id AND {_LIVE} AND x.start >= %(end)s), %(far_end)s)"""  # noqa: S608
_PREVIOUS_END = f"""COALESCE((SELECT MAX(x.occupied_until) FROM reservations_reservation x
    WHERE x.spot_id = s.id AND {_LIVE} AND x.occupied_until <= %(start)s),
  %(far_start)s)"""  # noqa: S608
# next start - previous end = gap before + window + gap after: ordering by it
# orders by the total gap, the window being the same for every spot. SQLite's
# julianday() is a float: rounded to the millisecond, equal spans compare equal
# and the tie-breakers after it decide, as they do in the ORM.
_SPAN = {
    "postgresql": f"({_NEXT_START} - {_PREVIOUS_END})",
    "sqlite": f"ROUND((julianday({_NEXT_START}) - julianday({_PREVIOUS_END})) * 86400000)",
}
SPOT_COLUMNS = [
    "id",
    "lot_id",
    "public_id",
    "label",
    "vehicle_type",
    "is_active",
    *FEATURE_FIELDS.values(),
    "max_height_cm",
]
_SPOT = ", ".join(f"s.{column}" for column in SPOT_COLUMNS)

# Best fit (allocation.best_fit_spots): among the free spots next to the
# neighbouring bookings, the one with the smallest span; else (no neighbour is
# free) the first free spot by label. Both {lock}ed, past spots another booking
# is locking: the answer is at most 2 × NEIGHBOURS spots and the first free one.
_PICK_BEST = f"""
SELECT {_SPOT} FROM lots_spot s
WHERE s.id IN ({_NEIGHBOUR_SPOTS})
  AND s.lot_id = %(lot)s AND s.vehicle_type = %(type)s AND s.is_active
  AND {_FREE} {{exclude}} {{needs}} {{gate}}
ORDER BY {{span}}, {{spare}}s.label
LIMIT 1 {{lock}}
"""  # noqa: S608  (constants only)
_PICK_ANY = f"""
SELECT {_SPOT} FROM lots_spot s
WHERE s.lot_id = %(lot)s AND s.vehicle_type = %(type)s AND s.is_active
  AND {_FREE} {{exclude}} {{needs}} {{gate}}
ORDER BY {{spare}}s.label
LIMIT 1 {{lock}}
"""  # noqa: S608  (constants only)


def needs_sql(features: tuple[str, ...], *, height: str = "") -> str:
    """Spot s has what a booking needs (lots/features.py): every feature named,
    and, with `height` (SQL for the vehicle's height: a parameter), room for the
    vehicle under both the spot's own limit and the lot's. Empty when nothing
    is asked."""
    parts = [f"s.{FEATURE_FIELDS[name]}" for name in features]
    if height:
        parts += [
            f"(s.max_height_cm IS NULL OR s.max_height_cm >= {height})",
            "NOT EXISTS (SELECT 1 FROM lots_lot l"  # noqa: S608  (a parameter or an int)
            f" WHERE l.id = s.lot_id AND l.height_limit_cm < {height})",
        ]
    return "".join(f" AND {part}" for part in parts)


def _spare_sql(features: tuple[str, ...]) -> str:
    """A tie-breaker before the label: spots without the scarce features the
    booking did not ask for come first, so that they stay free for those who do."""
    spare = [f"s.{FEATURE_FIELDS[name]}" for name in SCARCE_FEATURES if name not in features]
    return f"({' OR '.join(spare)}), " if spare else ""


def _pick_params(
    *,
    lot_pk: int,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    now: datetime,
    needs: SpotNeeds = NO_NEEDS,
) -> dict:
    horizon = timedelta(days=_HORIZON_DAYS)
    return {
        "height": needs.height_cm,
        "lot": lot_pk,
        "type": vehicle_type,
        "start": _db_time(start),
        "end": _db_time(end),
        "now": _db_time(now),
        "far_start": _db_time(start - horizon),
        "far_end": _db_time(end + horizon),
    }


def _pick_sql(
    template: str,
    *,
    exclude: list[int],
    wait: bool,
    gate: str = "",
    features: tuple[str, ...] = (),
    height: bool = False,
) -> str:
    lock = ""
    if connection.features.has_select_for_update:
        lock = "FOR UPDATE OF s" if wait else "FOR UPDATE OF s SKIP LOCKED"
    return template.format(
        exclude=f"AND s.id NOT IN ({', '.join(str(int(pk)) for pk in exclude)})" if exclude else "",
        needs=needs_sql(features, height="%(height)s" if height else ""),
        spare=_spare_sql(features),
        gate=gate,
        span=_SPAN["postgresql" if connection.vendor == "postgresql" else "sqlite"],
        lock=lock,
    )


def pick_spot(
    *,
    lot_pk: int,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    now: datetime,
    exclude: list[int],
    wait: bool,
    needs: SpotNeeds = NO_NEEDS,
) -> tuple | None:
    """The best-fit free spot's row (SPOT_COLUMNS) that has what the booking
    `needs`, locked on PostgreSQL: past spots another booking is locking, or,
    with `wait`, waiting for them."""
    params = _pick_params(
        lot_pk=lot_pk, vehicle_type=vehicle_type, start=start, end=end, now=now, needs=needs
    )
    shape = {"features": needs.features, "height": needs.height_cm is not None}
    with connection.cursor() as cursor:
        for template in (_PICK_BEST, _PICK_ANY):
            cursor.execute(_pick_sql(template, exclude=exclude, wait=wait, **shape), params)
            row = cursor.fetchone()
            if row is not None:
                return row
    return None


BOOKING_RATE = """
SELECT {locks} r.hourly_amount, r.daily_max_amount, l.id, l.slug, l.name, l.timezone,
  l.currency, l.no_show_grace_minutes,
  EXISTS (SELECT 1 FROM lots_openinghours h WHERE h.lot_id = l.id) AS has_hours,
  EXISTS (SELECT 1 FROM lots_raterule rr WHERE rr.lot_id = l.id AND rr.is_active
    AND rr.vehicle_type IN ('', r.vehicle_type)) AS has_rules
FROM lots_rate r JOIN lots_lot l ON l.id = r.lot_id
WHERE l.slug = %s AND l.is_active AND r.vehicle_type = %s
"""
BOOKING_LOT_COLUMNS = ["id", "slug", "name", "timezone", "currency", "no_show_grace_minutes"]


def _lock_keys(*, user_pk: int, plate: str) -> list[str]:
    return [f"driver:{user_pk}"] + ([f"plate:{plate}"] if plate else [])


# The space of the lot locks below (two-int advisory locks, apart from the
# one-bigint driver and plate locks): "Clos".
_LOT_LOCKS = 0x436C6F73


def lot_lock_for_closure(*, lot_pk: int) -> None:
    """PostgreSQL: until the transaction ends, keep bookings off the lot, after
    waiting for those in flight to finish (they hold the lock shared, from
    booking_rate): a closure made now is seen by every booking that follows,
    and every booking made before is seen by the closure. SQLite's IMMEDIATE
    transactions serialise every write already."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOT_LOCKS, lot_pk])


def lot_lock_shared(*, reservation_pk: int) -> None:
    """PostgreSQL: the lock booking_rate takes for a booking, on the lot of a
    reservation about to hold its spot over a new window (an extension).
    Taken before the reservation's row lock: a closure takes the lot's first."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock_shared(%s, lot_id::int)"
                " FROM reservations_reservation WHERE id = %s",
                [_LOT_LOCKS, reservation_pk],
            )


def booking_rate(
    *, slug: str, vehicle_type: str, lock_for: tuple[int, str] | None = None
) -> tuple | None:
    """(hourly, daily max, *BOOKING_LOT_COLUMNS, has opening hours, has rate
    rules) of an active lot's rate, or None. A lot open around the clock (most)
    costs its bookings no look at opening hours, one without flex rates no look
    at rate rules.

    With `lock_for` (driver pk, plate), on PostgreSQL, the same statement
    serialises, until the transaction ends, the bookings of that driver and of
    that plate, so that their limits (unpaid holds, one place at a time) cannot
    be passed by racing requests: transaction-scoped advisory locks. SQLite's
    IMMEDIATE transactions serialise every write already.

    On PostgreSQL it also takes the lot's lock shared (see lot_lock_for_closure),
    so that the statements that pick the spot see any closure made before."""
    if "\x00" in slug:
        return None
    locks, params = "", [slug, vehicle_type]
    if connection.vendor == "postgresql":
        locks = f"pg_advisory_xact_lock_shared({_LOT_LOCKS}, l.id::int), "
    if lock_for is not None and connection.vendor == "postgresql":
        keys = _lock_keys(user_pk=lock_for[0], plate=lock_for[1])
        locks += "".join("pg_advisory_xact_lock(hashtext(%s)), " for _ in keys)
        params = [*keys, *params]
    with connection.cursor() as cursor:
        cursor.execute(BOOKING_RATE.format(locks=locks), params)
        row = cursor.fetchone()
    return None if row is None else row[-10:]


# Lapsed holds included: the caller expires those it meets. Each branch is one
# index range (bookings still running at the window's start; the spot's
# overstaying car), so the spot's history is never read.
_OVERLAPPING = f"""
SELECT x.id, x.status, x.hold_expires_at FROM reservations_reservation x
WHERE x.spot_id = %(spot)s AND x.status IN ({_BLOCKING}) AND x.start < %(end)s
  AND x.id IN (
    SELECT y.id FROM reservations_reservation y
    WHERE y.spot_id = %(spot)s AND y.status IN ({_BLOCKING}) AND y.occupied_until > %(start)s
    UNION ALL
    SELECT y.id FROM reservations_reservation y
    WHERE y.spot_id = %(spot)s AND y.status = {_PARKED} AND y."end" <= %(now)s)
"""  # noqa: S608  (constants only)


def overlapping_on_spot(
    *, spot_pk: int, start: datetime, end: datetime, now: datetime
) -> list[tuple]:
    """(id, status, hold expiry) of blocking reservations that hold the spot over
    the window (see _HOLDS), lapsed holds included; locked on PostgreSQL."""
    lock = " FOR UPDATE OF x" if connection.features.has_select_for_update else ""
    params = {
        "spot": spot_pk,
        "start": _db_time(start),
        "end": _db_time(end),
        "now": _db_time(now),
    }
    with connection.cursor() as cursor:
        cursor.execute(_OVERLAPPING + lock, params)
        return [(pk, status, _py_time(held)) for pk, status, held in cursor.fetchall()]


# Counted up to the limit only: what the check needs, whatever else the driver
# holds (a driver's unpaid holds could pile up while the limit was higher).
_UNPAID_HOLDS = f"""
SELECT COUNT(*) FROM (SELECT 1 FROM reservations_reservation u
  WHERE u.user_id = %(user)s AND u.status = {_PENDING} AND u.hold_expires_at > %(now)s
  LIMIT %(max_unpaid)s) AS held
"""  # noqa: S608  (constants only)


def unpaid_holds(*, user_pk: int, now: datetime, at_most: int) -> int:
    """How many of the driver's bookings hold a spot unpaid right now, counted
    up to `at_most`."""
    with connection.cursor() as cursor:
        cursor.execute(
            _UNPAID_HOLDS, {"user": user_pk, "now": _db_time(now), "max_unpaid": at_most}
        )
        return cursor.fetchone()[0]


# A car still parked after its end is somewhere until it leaves: for its plate,
# as far ahead as the overstay sweep holds its spot (its horizon), not forever,
# or a missed exit would keep its driver from booking anywhere ever again.
_PLATE_BUSY = f"""
SELECT x.id FROM reservations_reservation x
WHERE x.vehicle_plate = %(plate)s AND x.status IN ({_BLOCKING}) AND x.start < %(end)s
  AND (x.occupied_until > %(start)s {{overstaying}})
  AND NOT (x.status = {_PENDING} AND x.hold_expires_at <= %(now)s)
LIMIT 1
"""  # noqa: S608  (constants only)
_OVERSTAYING = f'OR (x.status = {_PARKED} AND x."end" <= %(now)s)'


def _plate_busy_sql(*, start: datetime, horizon: datetime) -> str:
    return _PLATE_BUSY.format(overstaying=_OVERSTAYING if start < horizon else "")


def plate_busy(
    *, plate: str, start: datetime, end: datetime, now: datetime, horizon: datetime
) -> bool:
    """Whether the vehicle already holds a spot, anywhere, over part of [start, end);
    a car parked past its end counts as there until `horizon`."""
    params = {"plate": plate, "start": _db_time(start), "end": _db_time(end), "now": _db_time(now)}
    with connection.cursor() as cursor:
        cursor.execute(_plate_busy_sql(start=start, horizon=horizon), params)
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


# --- a whole booking in one statement (PostgreSQL) ------------------------------------------

# With the driver's and the plate's advisory locks already held (booking_rate),
# one statement checks the limits, picks and locks the best-fit spot (past spots
# other bookings are locking), inserts the reservation, its first event and its
# Idempotency-Key, and bumps the lot's availability version. Its snapshot is
# taken after the locks were granted, so racing requests of one driver or plate
# cannot both pass a limit. The exclusion constraint stays the last word: a row
# that would overlap is not inserted (ON CONFLICT DO NOTHING, no error, no
# savepoint), and the caller falls back to placement's protocol, which expires
# lapsed holds in the way and re-checks under the lock. Every part below is
# the statement that the fallback (and SQLite) runs on its own.
_BOOK = f"""
WITH limits AS (
  SELECT ({_UNPAID_HOLDS}) AS unpaid, {{plate_busy}} AS plate_busy
), best AS MATERIALIZED ({{best}}
), any_free AS MATERIALIZED ({{any_free}}
), spot AS (
  SELECT * FROM best UNION ALL SELECT * FROM any_free
), booked AS (
  INSERT INTO reservations_reservation ({{columns}}, spot_id)
  SELECT {{values}}, spot.id FROM spot
  ON CONFLICT DO NOTHING
  RETURNING id
), event AS (
  INSERT INTO reservations_reservationevent ({{event_columns}}, reservation_id)
  SELECT {{event_values}}, booked.id FROM booked
){{key}}, version AS (
  UPDATE lots_lot SET availability_version = availability_version + 1
  WHERE id = %(lot)s AND EXISTS (SELECT 1 FROM booked)
)
SELECT limits.unpaid, limits.plate_busy, {_SPOT}, (SELECT id FROM booked), {{key_taken}},
  CASE WHEN s.id IS NULL THEN {{key_known}} END,
  CASE WHEN s.id IS NULL THEN EXISTS (
    SELECT 1 FROM reservations_closure c WHERE c.whole_lot AND {_CLOSURE_OVER_NAMED}) END
FROM limits LEFT JOIN spot s ON TRUE
"""  # noqa: S608  (constants only; values are parameters)
_WITHIN_LIMITS = "AND (SELECT unpaid < %(max_unpaid)s AND NOT plate_busy FROM limits)"
_KEY = """, idempotency_key AS (
  INSERT INTO reservations_idempotencykey (user_id, key, fingerprint, reservation_id, created_at)
  SELECT %(user)s, %(key)s, %(fingerprint)s, booked.id, %(now)s FROM booked
  ON CONFLICT (user_id, key) DO NOTHING
  RETURNING 1
)"""
_AFTER_BEST = f"{_WITHIN_LIMITS} AND NOT EXISTS (SELECT 1 FROM best)"  # noqa: S608
_KEY_TAKEN = "EXISTS (SELECT 1 FROM booked) AND NOT EXISTS (SELECT 1 FROM idempotency_key)"
# A refused request's key booked before: its first answer is owed. The driver's
# lock (booking_rate) makes this exact: a twin request with the same key
# committed before this statement's snapshot was taken.
_KEY_KNOWN = """EXISTS (SELECT 1 FROM reservations_idempotencykey k
    WHERE k.user_id = %(user)s AND k.key = %(key)s)"""


@dataclass(frozen=True)
class Booked:
    """What the one-statement booking did."""

    unpaid_holds: int
    plate_busy: bool
    spot: tuple | None  # SPOT_COLUMNS of the spot picked (and locked), if any
    reservation_pk: int | None  # None: not inserted (no spot, or the constraint refused it)
    key_taken: bool  # the Idempotency-Key was taken by a twin request: undo ours
    # Asked only when no spot was taken (a refusal), else False:
    key_known: bool  # the Idempotency-Key booked before: replay, not refuse
    lot_closed: bool  # a closure of the whole lot is over part of the window


# Fields whose value goes to PostgreSQL as the model holds it: for these
# get_db_prep_save hands the value back unchanged (a str, a bool, an aware
# datetime) after a few calls a field; integers it wraps in typed values.
_AS_IS = (models.BooleanField, models.CharField, models.DateTimeField)


@lru_cache(maxsize=8)
def _insert_shape(model: type[models.Model], *, prefix: str, skip: str) -> tuple:
    """(fields as (name, field, whether its value goes as is), columns,
    placeholders) to insert a `model` row as the ORM would, but for its primary
    key and the foreign key `skip`, which the statement fills in."""
    fields = tuple(
        (f"{prefix}{field.attname}", field, _as_is(field))
        for field in model._meta.concrete_fields
        if not field.primary_key and field.attname != skip
    )
    columns = ", ".join(connection.ops.quote_name(field.column) for _, field, _ in fields)
    values = ", ".join(f"%({name})s" for name, _, _ in fields)
    return fields, columns, values


def _as_is(field: models.Field) -> bool:
    """Whether the instance's own value is what the ORM would send: no auto_now
    to fill in (pre_save), no conversion (get_db_prep_save)."""
    filled_in = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    return type(field) in _AS_IS and not filled_in


def _insert_params(instance: models.Model, *, prefix: str, skip: str) -> dict:
    """The parameters to insert `instance` (see _insert_shape) as the ORM would:
    its defaults and auto_now fields included."""
    params = {}
    values = instance.__dict__  # a new instance holds every field's value there
    for name, field, as_is in _insert_shape(type(instance), prefix=prefix, skip=skip)[0]:
        if as_is:
            params[name] = values[field.attname]
        else:
            params[name] = field.get_db_prep_save(field.pre_save(instance, True), connection)
    return params


@lru_cache(maxsize=32)
def _book_sql(
    *,
    plate: bool,
    overstaying: bool,
    key: bool,
    features: tuple[str, ...] = (),
    height: bool = False,
) -> str:
    """_BOOK for one shape of booking: with a plate (and its car possibly parked
    past its end now), with an Idempotency-Key, with spot features asked for and
    a vehicle height given. Built once per shape, so that
    psycopg converts it once and PostgreSQL prepares it once per connection."""
    event_columns, event_values = _insert_shape(
        ReservationEvent, prefix="e_", skip="reservation_id"
    )[1:]
    plate_busy = (
        f"EXISTS ({_PLATE_BUSY.format(overstaying=_OVERSTAYING if overstaying else '')})"
        if plate
        else "FALSE"
    )
    columns, values = _insert_shape(Reservation, prefix="r_", skip="spot_id")[1:]
    return _BOOK.format(
        plate_busy=plate_busy,
        best=_pick_sql(
            _PICK_BEST,
            exclude=[],
            wait=False,
            gate=_WITHIN_LIMITS,
            features=features,
            height=height,
        ),
        any_free=_pick_sql(
            _PICK_ANY, exclude=[], wait=False, gate=_AFTER_BEST, features=features, height=height
        ),
        columns=columns,
        values=values,
        event_columns=event_columns,
        event_values=event_values,
        key=_KEY if key else "",
        key_taken=_KEY_TAKEN if key else "FALSE",
        key_known=_KEY_KNOWN if key else "FALSE",
    )


def book(
    *,
    reservation: Reservation,
    event: ReservationEvent,
    max_unpaid: int,
    plate_horizon: datetime,
    key: str | None,
    fingerprint: str,
    now: datetime,
    needs: SpotNeeds = NO_NEEDS,
) -> Booked:
    """Run _BOOK for an unsaved `reservation` (spot to be picked) and its first
    `event` (reservation to be set), inside the caller's transaction, after
    booking_rate took the locks. PostgreSQL only."""
    start, end = reservation.start, reservation.end
    params = _pick_params(
        lot_pk=reservation.lot_id,
        vehicle_type=reservation.vehicle_type,
        start=start,
        end=end,
        now=now,
        needs=needs,
    )
    plate = reservation.vehicle_plate
    params.update(
        _insert_params(reservation, prefix="r_", skip="spot_id"),
        **_insert_params(event, prefix="e_", skip="reservation_id"),
        user=reservation.user_id,
        plate=plate,
        max_unpaid=max_unpaid,
        key=key,
        fingerprint=fingerprint,
    )
    sql = _book_sql(
        plate=bool(plate),
        overstaying=start < plate_horizon,
        key=bool(key),
        features=needs.features,
        height=needs.height_cm is not None,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        unpaid, busy, *spot, reservation_pk, key_taken, key_known, closed = cursor.fetchone()
    return Booked(
        unpaid_holds=unpaid,
        plate_busy=busy,
        spot=tuple(spot) if spot[0] is not None else None,
        reservation_pk=reservation_pk,
        key_taken=bool(key_taken),
        key_known=bool(key_known),
        lot_closed=bool(closed),
    )
