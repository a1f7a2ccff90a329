"""The bench database: derived from the configured one, rebuilt, seeded and checked.

Never the developer's database: on PostgreSQL it is `<name>_bench` on the same
server, dropped and re-created on every run; on SQLite it is var/bench.sqlite3,
deleted on every run. Django is set up against it by `use_bench_database`.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from bench.config import VAR_DIR

SQLITE_PATH = VAR_DIR / "bench.sqlite3"
_PG_SCHEMES = ("postgres", "postgresql", "pgsql", "psql", "postgis")

# (city, IANA time zone, currency): lots in many time zones, as in production.
CITIES = (
    ("Paris", "Europe/Paris", "eur"),
    ("New York", "America/New_York", "usd"),
    ("Tokyo", "Asia/Tokyo", "jpy"),
    ("London", "Europe/London", "gbp"),
    ("Sydney", "Australia/Sydney", "aud"),
    ("Sao Paulo", "America/Sao_Paulo", "brl"),
    ("Mumbai", "Asia/Kolkata", "inr"),
    ("Berlin", "Europe/Berlin", "eur"),
    ("Chicago", "America/Chicago", "usd"),
    ("Toronto", "America/Toronto", "cad"),
)
# Share of a lot's spots per vehicle type.
SPOT_MIX = (("motorcycle", 0.10), ("car", 0.75), ("van", 0.15))


@dataclass(frozen=True)
class BenchDatabase:
    url: str  # what the bench and its server use as DATABASE_URL
    vendor: str  # "postgresql" or "sqlite"
    name: str
    source: str  # what it was derived from ("" for the SQLite default)


def derive(configured_url: str) -> BenchDatabase:
    if not configured_url or configured_url.startswith("sqlite"):
        return BenchDatabase(
            url=f"sqlite:///{SQLITE_PATH}",
            vendor="sqlite",
            name=str(SQLITE_PATH),
            source=configured_url,
        )
    parts = urlsplit(configured_url)
    if parts.scheme not in _PG_SCHEMES:
        raise SystemExit(f"bench: unsupported DATABASE_URL scheme {parts.scheme!r}")
    name = parts.path.lstrip("/")
    if not name:
        raise SystemExit("bench: DATABASE_URL names no database")
    bench_name = f"{name}_bench"
    url = urlunsplit(parts._replace(path=f"/{bench_name}"))
    return BenchDatabase(url=url, vendor="postgresql", name=bench_name, source=configured_url)


def recreate(db: BenchDatabase) -> None:
    """Start from nothing: drop and re-create the bench database."""
    if db.vendor == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            SQLITE_PATH.with_name(SQLITE_PATH.name + suffix).unlink(missing_ok=True)
        return
    import psycopg
    from psycopg import sql

    parts = urlsplit(db.url)
    maintenance = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.name)))


def use_bench_database(db: BenchDatabase, redis_url: str, *, ceiling: bool = True) -> None:
    """Point this process's Django at the bench database (call before django.setup).

    With `ceiling`, the bench's ceiling app (bench/ceiling) is installed, so that
    its table is migrated into the bench database (the server gets it too)."""
    os.environ["DATABASE_URL"] = db.url
    if ceiling:
        os.environ["BENCH_CEILING"] = "1"
    else:
        os.environ.pop("BENCH_CEILING", None)
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def migrate() -> float:
    from django.core.management import call_command

    began = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    return time.perf_counter() - began


@dataclass(frozen=True)
class Seeded:
    lot_slugs: list[str]  # the ordinary lots, busiest first
    event_slug: str  # a small lot next to a stadium, where the hot bookings go
    tokens: list[str]  # raw bearer tokens, one per bench user
    smoke_login: tuple[str, str]  # e-mail and password of an account the smoke test logs in to
    spots: int
    reservations: int
    seconds: float
    # (lot slug, vehicle type) -> spot ids, for the ceiling's bookings.
    spot_ids: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    history_rows: int = 0  # of `reservations`: the long history (BENCH_HISTORY_DAYS)
    history_seconds: float = 0.0


EVENT_SLUG = "bench-event"


def seed(
    *,
    lots: int,
    spots_per_lot: int,
    event_spots: int,
    reservations_per_spot: int,
    users: int,
    rng: random.Random,
    history_days: int = 0,
    history_lots: int = 0,
) -> Seeded:
    """Lots x spots of mixed types with rates, one small event lot, users with API
    tokens, and a booking history (non-overlapping confirmed/completed reservations) so that queries
    run against realistic tables. bulk_create skips the signals that bump a lot's
    availability version, which is fine on a fresh database."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django.utils import timezone

    from lots.models import Lot, Rate, Spot
    from parking.models import ApiToken, User, hash_token
    from reservations.models import Reservation

    began = time.perf_counter()
    now = timezone.now()
    with transaction.atomic():
        Lot.objects.bulk_create(
            Lot(
                slug=f"bench-{i:04d}",
                name=f"Bench lot {i}",
                address=f"{i} Benchmark Street",
                city=CITIES[i % len(CITIES)][0],
                timezone=CITIES[i % len(CITIES)][1],
                currency=CITIES[i % len(CITIES)][2],
            )
            for i in range(lots)
        )
        Lot.objects.create(
            slug=EVENT_SLUG,
            name="Bench stadium lot",
            address="1 Stadium Way",
            city=CITIES[0][0],
            timezone=CITIES[0][1],
            currency=CITIES[0][2],
        )
        lot_rows = list(Lot.objects.order_by("slug").values_list("pk", "slug", "currency"))

        rates: dict[tuple[int, str], tuple[int, int]] = {}
        for lot_pk, _, _ in lot_rows:
            for vehicle_type, _ in SPOT_MIX:
                hourly = rng.randrange(100, 800, 10)
                rates[(lot_pk, vehicle_type)] = (hourly, hourly * rng.randint(6, 12))
        Rate.objects.bulk_create(
            Rate(lot_id=lot_pk, vehicle_type=vt, hourly_amount=h, daily_max_amount=d)
            for (lot_pk, vt), (h, d) in rates.items()
        )

        spots: list[Spot] = []
        for lot_pk, slug, _ in lot_rows:
            number = 0
            size = event_spots if slug == EVENT_SLUG else spots_per_lot
            for vehicle_type, share in SPOT_MIX:
                for _ in range(max(1, round(size * share))):
                    number += 1
                    spots.append(
                        Spot(
                            lot_id=lot_pk,
                            label=f"{vehicle_type[0].upper()}-{number:04d}",
                            vehicle_type=vehicle_type,
                        )
                    )
        Spot.objects.bulk_create(spots, batch_size=5000)

        unusable = make_password(None)
        User.objects.bulk_create(
            User(email=f"driver{i}@bench.invalid", password=unusable) for i in range(users)
        )
        user_pks = list(
            User.objects.filter(email__endswith="@bench.invalid").values_list("pk", flat=True)
        )
        tokens = [secrets.token_urlsafe(32) for _ in user_pks]
        ApiToken.objects.bulk_create(
            ApiToken(user_id=pk, key_hash=hash_token(raw), prefix=raw[:8])
            for pk, raw in zip(user_pks, tokens, strict=True)
        )
        # A sign-up opens an account only from the link it e-mails, so the smoke
        # test logs in to an account made here.
        smoke_login = ("smoke@bench.invalid", secrets.token_urlsafe(16))
        User.objects.create(email=smoke_login[0], password=make_password(smoke_login[1]))

    currency = {pk: cur for pk, _, cur in lot_rows}
    spot_rows = list(Spot.objects.values_list("pk", "lot_id", "vehicle_type"))
    history_began = time.perf_counter()
    long_history = 0
    if history_days:
        ordinary = [pk for pk, slug, _ in lot_rows if slug != EVENT_SLUG]
        history_lot_pks = ordinary[:history_lots] if history_lots else ordinary
        long_history = _long_history(history_lot_pks, history_days, user_pks, now=now, rng=rng)
    history_seconds = time.perf_counter() - history_began
    # The recent bookings after the long history (minutes to seed): their holds
    # must still be open when the phases start, as in a live system whose sweep
    # expires lapsed holds every minute. Lapsed, every booking that met one went
    # the slow way (expire it, then book again).
    history = _history(
        spot_rows, currency, rates, user_pks, reservations_per_spot, now=timezone.now(), rng=rng
    )
    _unique_codes(history)
    for start in range(0, len(history), 5000):
        with transaction.atomic():
            Reservation.objects.bulk_create(history[start : start + 5000])
    _analyze()

    slug_of = {pk: slug for pk, slug, _ in lot_rows}
    spot_ids: dict[tuple[str, str], list[int]] = {}
    for spot_pk, lot_pk, vehicle_type in spot_rows:
        spot_ids.setdefault((slug_of[lot_pk], vehicle_type), []).append(spot_pk)

    return Seeded(
        lot_slugs=[slug for _, slug, _ in lot_rows if slug != EVENT_SLUG],
        event_slug=EVENT_SLUG,
        tokens=tokens,
        smoke_login=smoke_login,
        spots=len(spot_rows),
        reservations=len(history) + long_history,
        seconds=time.perf_counter() - began,
        spot_ids=spot_ids,
        history_rows=long_history,
        history_seconds=history_seconds,
    )


def _analyze() -> None:
    """Give PostgreSQL's planner the statistics a live database would have.

    Without them (autovacuum has not run yet on a fresh database) it expects one
    row everywhere and plans accordingly. SQLite gathers none unless asked, in
    production too, so it is left alone."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


_HISTORY_HOURS = (1, 2, 2, 3, 4, 8, 10, 24, 48)
# Share of the coming bookings seeded as holds still waiting for payment.
_PENDING_SHARE = 0.03


def _unique_codes(reservations: list) -> None:
    # 60,000 random codes meet twice about once in 400 seeds (30^8 of them): the
    # booking service draws again on a clash, a bulk load must do it up front.
    from reservations.models import new_reservation_code

    seen: set[str] = set()
    for reservation in reservations:
        while reservation.code in seen:
            reservation.code = new_reservation_code()
        seen.add(reservation.code)


def _history(
    spot_rows: list[tuple[int, int, str]],
    currency: dict[int, str],
    rates: dict[tuple[int, str], tuple[int, int]],
    user_pks: list[int],
    per_spot: int,
    *,
    now: datetime,
    rng: random.Random,
) -> list:
    """`per_spot` non-overlapping reservations per spot, from 2 days ago to 60 days ahead."""
    from lots.pricing import window_price
    from reservations.models import Reservation

    if per_spot <= 0:
        return []
    origin = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    segment_hours = (62 * 24) // per_spot
    rows: list[Reservation] = []
    for spot_pk, lot_pk, vehicle_type in spot_rows:
        hourly, daily_max = rates[(lot_pk, vehicle_type)]
        for k in range(per_spot):
            hours = min(rng.choice(_HISTORY_HOURS), segment_hours - 1)
            offset = rng.randrange(0, segment_hours - hours)
            start = origin + timedelta(hours=k * segment_hours + offset)
            end = start + timedelta(hours=hours)
            hold_expires_at = None
            if end <= now:
                status = "completed"
            elif start <= now:
                status = "parked"
            elif rng.random() < _PENDING_SHARE:
                # Booked in the last minutes, not paid yet, as a live system
                # always has some: the planner's statistics then know them.
                status = "pending_payment"
                hold_expires_at = now + timedelta(minutes=rng.randrange(1, 15))
            else:
                status = "confirmed"
            rows.append(
                Reservation(
                    user_id=rng.choice(user_pks),
                    lot_id=lot_pk,
                    spot_id=spot_pk,
                    vehicle_type=vehicle_type,
                    start=start,
                    end=end,
                    occupied_until=end,
                    status=status,
                    price_amount=window_price(start, end, hourly=hourly, daily_max=daily_max),
                    currency=currency[lot_pk],
                    hold_expires_at=hold_expires_at,
                    arrived_at=start if status in ("completed", "parked") else None,
                    departed_at=end if status == "completed" else None,
                )
            )
    return rows


# --- long history (BENCH_HISTORY_DAYS) ---------------------------------------------------

# One booking per spot per past day, settled as real history is: mostly completed,
# some no-shows, cancellations and lapsed holds. Built by PostgreSQL itself
# (INSERT ... SELECT over generate_series): a year for 100 lots x 200 spots is 7.3M
# rows. Codes start with "0", which live codes never do (CODE_ALPHABET), so they
# cannot collide with a booking made during the run.
_HISTORY_SQL = """
INSERT INTO reservations_reservation (
    code, user_id, lot_id, spot_id, vehicle_type, vehicle_plate, start, "end",
    occupied_until, status, price_amount, no_show_amount, hourly_amount, daily_max_amount,
    amount_due, overstay_amount, settlement, settlement_attempts, settlement_error,
    settled_at, currency, hold_expires_at, arrived_at, departed_at, created_at, updated_at,
    requested_features)
SELECT
    '0' || substr(x.hex, 1, 3) || '-' || substr(x.hex, 4, 4),
    x.user_id, x.lot_id, x.spot_id, x.vehicle_type, '', x.start, x.finish,
    x.finish, x.status, x.price, x.price, x.hourly_amount, x.daily_max_amount,
    CASE WHEN x.status IN ('completed', 'no_show') THEN x.price END, 0,
    CASE WHEN x.status IN ('completed', 'no_show') THEN 'settled' ELSE '' END, 0, '',
    CASE WHEN x.status IN ('completed', 'no_show') THEN x.finish END, x.currency,
    CASE WHEN x.status = 'expired' THEN x.start - interval '1 day' + interval '15 minutes' END,
    CASE WHEN x.status = 'completed' THEN x.start END,
    CASE WHEN x.status = 'completed' THEN x.finish END,
    x.start - interval '1 day', x.finish, ''
FROM (
    SELECT y.*,
        y.start + y.hours * interval '1 hour' AS finish,
        LEAST(y.hourly_amount * y.hours, y.daily_max_amount) AS price,
        CASE WHEN y.u < 0.80 THEN 'completed' WHEN y.u < 0.85 THEN 'no_show'
             WHEN y.u < 0.95 THEN 'cancelled' ELSE 'expired' END AS status
    FROM (
        SELECT s.id AS spot_id, s.lot_id, s.vehicle_type, l.currency,
            r.hourly_amount, r.daily_max_amount,
            upper(lpad(to_hex(%(offset)s + row_number() OVER ()), 7, '0')) AS hex,
            (%(users)s::bigint[])[1 + floor(random() * %(user_count)s)::int] AS user_id,
            date_trunc('day', %(now)s::timestamptz) - (d.day + 2) * interval '1 day'
                + floor(random() * 52) * interval '15 minutes' AS start,
            1 + floor(random() * 10)::int AS hours,
            random() AS u
        FROM lots_spot s
        JOIN lots_lot l ON l.id = s.lot_id
        JOIN lots_rate r ON r.lot_id = s.lot_id AND r.vehicle_type = s.vehicle_type
        CROSS JOIN generate_series(1, %(days)s) AS d(day)
        WHERE s.lot_id = ANY(%(lots)s)
    ) y
) x
"""


def _long_history(
    lot_pks: list[int], days: int, user_pks: list[int], *, now: datetime, rng: random.Random
) -> int:
    """Insert `days` of settled history on these lots; the number of rows."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return _long_history_python(lot_pks, days, user_pks, now=now, rng=rng)
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [(rng.random() * 2) - 1])
        cursor.execute("SET maintenance_work_mem = '256MB'")
        cursor.execute("SET synchronous_commit = off")
        # Inside a transaction (tests), deferred foreign-key checks still pending
        # would forbid altering the table: run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        rebuild = _drop_reservation_indexes(cursor)
        total = 0
        # Ten lots at a time: progress to watch, and no single huge transaction.
        for i in range(0, len(lot_pks), 10):
            cursor.execute(
                _HISTORY_SQL,
                {
                    "offset": total,
                    "users": user_pks,
                    "user_count": len(user_pks),
                    "now": now,
                    "days": days,
                    "lots": lot_pks[i : i + 10],
                },
            )
            total += cursor.rowcount
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for statement in rebuild:  # indexes built once over all rows: much faster
            cursor.execute(statement)
    return total


def _drop_reservation_indexes(cursor) -> list[str]:
    """Drop the reservation table's indexes and exclusion constraint (not its
    primary key or unique code) for a bulk load; the statements that re-create them."""
    cursor.execute(
        """
        SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = 'reservations_reservation'::regclass AND contype = 'x'
        """
    )
    constraints = cursor.fetchall()
    cursor.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.tablename = 'reservations_reservation'
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                          WHERE c.conindid = (quote_ident(i.indexname))::regclass)
        """
    )
    indexes = cursor.fetchall()
    for name, _ in constraints:
        cursor.execute(f'ALTER TABLE reservations_reservation DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    return [defn for _, defn in indexes] + [
        f'ALTER TABLE reservations_reservation ADD CONSTRAINT "{name}" {defn}'
        for name, defn in constraints
    ]


def _long_history_python(
    lot_pks: list[int], days: int, user_pks: list[int], *, now: datetime, rng: random.Random
) -> int:
    """SQLite: the same history, built in Python (slower; keep it small there)."""
    from django.db import transaction

    from lots.models import Lot, Rate, Spot
    from reservations.models import Reservation

    rates = {
        (lot, vt): (h, d)
        for lot, vt, h, d in Rate.objects.filter(lot_id__in=lot_pks).values_list(
            "lot_id", "vehicle_type", "hourly_amount", "daily_max_amount"
        )
    }
    currency = dict(Lot.objects.filter(pk__in=lot_pks).values_list("pk", "currency"))
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    total, batch = 0, []
    spots = Spot.objects.filter(lot_id__in=lot_pks).values_list("pk", "lot_id", "vehicle_type")
    for spot_pk, lot_pk, vehicle_type in spots:
        hourly, daily_max = rates[(lot_pk, vehicle_type)]
        for day in range(1, days + 1):
            start = midnight - timedelta(days=day + 2) + timedelta(minutes=15 * rng.randrange(52))
            hours = rng.randint(1, 10)
            end = start + timedelta(hours=hours)
            u = rng.random()
            status = (
                "completed"
                if u < 0.80
                else "no_show"
                if u < 0.85
                else "cancelled"
                if u < 0.95
                else "expired"
            )
            price = min(hourly * hours, daily_max)
            settled = status in ("completed", "no_show")
            total += 1
            batch.append(
                Reservation(
                    code=f"0{total:07X}"[:4] + "-" + f"0{total:07X}"[4:],
                    user_id=rng.choice(user_pks),
                    lot_id=lot_pk,
                    spot_id=spot_pk,
                    vehicle_type=vehicle_type,
                    start=start,
                    end=end,
                    occupied_until=end,
                    status=status,
                    price_amount=price,
                    no_show_amount=price,
                    hourly_amount=hourly,
                    daily_max_amount=daily_max,
                    amount_due=price if settled else None,
                    settlement="settled" if settled else "",
                    settled_at=end if settled else None,
                    currency=currency[lot_pk],
                    hold_expires_at=start - timedelta(hours=23, minutes=45)
                    if status == "expired"
                    else None,
                    arrived_at=start if status == "completed" else None,
                    departed_at=end if status == "completed" else None,
                )
            )
            if len(batch) >= 5000:
                with transaction.atomic():
                    Reservation.objects.bulk_create(batch)
                batch = []
    if batch:
        with transaction.atomic():
            Reservation.objects.bulk_create(batch)
    return total


def describe_vendor() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
        cursor.execute("SELECT sqlite_version()")
        return f"SQLite {cursor.fetchone()[0]}"


# --- checks after the load ------------------------------------------------------------

# Blocking reservations whose [start, occupied_until) overlaps an earlier-starting
# blocking reservation of the same spot (0 when no spot is booked twice). A window
# over each spot's bookings in start order: O(n log n), where a self-join would
# compare every pair of a spot's bookings (a year of history: billions of pairs).
OVERLAP_SQL = """
SELECT COUNT(*) FROM (
    SELECT start, MAX(occupied_until) OVER (
        PARTITION BY spot_id ORDER BY start, id
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS earlier_until
    FROM reservations_reservation
    WHERE status IN ('pending_payment', 'confirmed', 'parked', 'completed', 'no_show')
) t
WHERE earlier_until > start
"""


@dataclass(frozen=True)
class Booked:
    """What a 201 answer said: the reservation id, its spot and window."""

    code: str
    spot: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class CheckResult:
    overlapping: int
    reservations_total: int
    booked_201: int
    missing_codes: list[str]
    mismatched_codes: list[str]
    duplicate_codes: int
    seconds: float

    @property
    def ok(self) -> bool:
        return (
            self.overlapping == 0
            and not self.missing_codes
            and not self.mismatched_codes
            and not self.duplicate_codes
        )


def check(booked: list[Booked]) -> CheckResult:
    """No two blocking reservations of one spot overlap; every 201 is a real row."""
    from django.db import connection

    from reservations.models import Reservation

    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(OVERLAP_SQL)
        overlapping = int(cursor.fetchone()[0])
        cursor.execute("SELECT COUNT(*) FROM reservations_reservation")
        total = int(cursor.fetchone()[0])

    by_code = {b.code: b for b in booked}
    found: dict[str, tuple[str, datetime, datetime]] = {}
    codes = list(by_code)
    for i in range(0, len(codes), 500):
        rows = Reservation.objects.filter(code__in=codes[i : i + 500]).values_list(
            "code", "spot__public_id", "start", "end"
        )
        for code, spot, start, end in rows:
            found[code] = (spot, start, end)

    missing = sorted(set(by_code) - set(found))
    mismatched = sorted(
        code
        for code, (spot, start, end) in found.items()
        if (spot, start, end) != (by_code[code].spot, by_code[code].start, by_code[code].end)
    )
    return CheckResult(
        overlapping=overlapping,
        reservations_total=total,
        booked_201=len(booked),
        missing_codes=missing,
        mismatched_codes=mismatched,
        duplicate_codes=len(booked) - len(by_code),
        seconds=time.perf_counter() - began,
    )
