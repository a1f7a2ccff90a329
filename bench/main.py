"""`make bench`: seed a bench database, start gunicorn, load it over HTTP, check, report."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from bench import database, loadgen, payments, report, system
from bench import metrics as server_metrics
from bench.config import VAR_DIR, BenchConfig, redact
from bench.pgstat import ConnectionSampler
from bench.server import HOST, Server, ServerConfig, free_port, server_env
from bench.workload import (
    AvailabilityWorkload,
    BookingLedger,
    BookingWorkload,
    PayingBookingWorkload,
    baseline_request,
    booked_from_answer,
    iso,
)

TARGETS = {"availability": 1000, "bookings": 300}
# ParkSpot against the in-bench ceiling (issue #13): (ParkSpot phase, ceiling phase,
# least ratio of req/s, greatest p99 in ms or None).
AIMS = (
    ("availability", "ceiling-read", 0.8, None),
    ("bookings", "ceiling-book", 0.5, 150.0),
)
# Share of the machine used by processes other than ours that makes a phase suspect.
OTHER_LOAD_WARN_PCT = 10.0


def log(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)  # noqa: DTZ005


def bench_redis_url(redis_url: str, redis_db: int) -> str:
    """Same Redis server, another database (BENCH_REDIS_DB, default 15), flushed first.

    Cache keys carry lot primary keys and versions, which restart at 1 and 0 in
    every fresh bench database: sharing the developer's Redis database (or the
    last run's) would serve their answers to ours and ours to theirs."""
    if not redis_url:
        return ""
    url = urlunsplit(urlsplit(redis_url)._replace(path=f"/{redis_db}"))
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


@dataclass
class Outcome:
    """Everything a run found out, turned into the report at the end."""

    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    smoke: dict[str, Any] = field(default_factory=dict)
    booked: list[database.Booked] = field(default_factory=list)
    checks: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def main() -> int:
    cfg = BenchConfig.from_env()
    rng = random.Random(cfg.seed)
    started = datetime.now(UTC)

    machine = system.machine()  # load average as the run starts
    busy_before = system.busy_fraction()
    if busy_before * 100 >= OTHER_LOAD_WARN_PCT:
        log(f"warning: the machine is already {busy_before:.0%} busy before the bench starts")

    db = database.derive(cfg.database_url)
    redis_url = bench_redis_url(cfg.redis_url, cfg.redis_db)
    log(f"bench database: {db.vendor} {redact(db.url)} (re-created)")
    database.recreate(db)
    database.use_bench_database(db, redis_url, ceiling=cfg.ceiling)
    log(f"migrated in {database.migrate():.1f} s; seeding ...")
    seeded = database.seed(
        lots=cfg.lots,
        spots_per_lot=cfg.spots_per_lot,
        event_spots=cfg.event_spots,
        reservations_per_spot=cfg.reservations_per_spot,
        users=cfg.users,
        rng=rng,
        history_days=cfg.history_days,
        history_lots=cfg.history_lots,
    )
    log(
        f"seeded {len(seeded.lot_slugs)} lots + 1 event lot, {seeded.spots} spots, "
        f"{seeded.reservations} reservations ({seeded.history_rows} of them long history, "
        f"{seeded.history_seconds:.1f} s), {len(seeded.tokens)} drivers in {seeded.seconds:.1f} s"
    )
    db_version = database.describe_vendor()
    from django.db import connections

    connections.close_all()  # the server must not share our connections

    server_cfg = ServerConfig(
        worker_class=cfg.worker_class,
        workers=cfg.workers,
        threads=cfg.threads,
        port=cfg.port or free_port(),
    )
    stripe = payments.LocalStripe(webhook_port=server_cfg.port) if cfg.payments else None
    server = Server(
        server_cfg,
        server_env(
            db.url,
            redis_url,
            stripe=stripe.env() if stripe else None,
            ceiling=cfg.ceiling,
        ),
    )
    outcome = Outcome()
    cards: dict[str, str] = {}
    try:
        if stripe is not None:
            log("payments on: starting localstripe and making each driver's card")
            stripe.start()
            cards = stripe.cards(seeded.tokens)
        log(f"starting {server_cfg.describe()}")
        server.start()
        log("server healthy; smoke test through the real auth endpoints")
        outcome.smoke = asyncio.run(
            _smoke(server_cfg.port, seeded.lot_slugs[-1], seeded.smoke_login, outcome)
        )
        before = server_metrics.scrape(HOST, server_cfg.port)
        booked_before = len(outcome.booked)
        _run_phases(cfg, server, seeded, db, rng, outcome, cards)
        after = server_metrics.scrape(HOST, server_cfg.port)
        _check_metrics(outcome, before, after, booked=len(outcome.booked) - booked_before)
    finally:
        code = server.stop()
        log(f"gunicorn stopped (exit {code})")
        if stripe is not None:
            stripe.stop()

    _judge_phases(outcome)
    comparisons = report.compare(outcome.phases, AIMS)
    if "bookings" in outcome.phases:
        _check_bookings(outcome)

    json_path = VAR_DIR / f"bench-{started.strftime('%Y%m%d-%H%M%S')}.json"
    full = {
        "started_at": started.isoformat(),
        "machine": {**machine, "busy_before_pct": round(busy_before * 100, 1)},
        "database": {"vendor": db.vendor, "version": db_version, "name": db.name},
        "cache": f"Redis {redact(redis_url)} (django-redis)"
        if redis_url
        else "local memory (one per gunicorn worker process)",
        "server": server_cfg.describe(),
        "payments": "on (BENCH_PAYMENTS=1): localstripe; the paid-bookings phase books, then "
        "pays with `complete` and the driver's PaymentMethod id"
        if cfg.payments
        else "off: no Stripe settings (a booking makes no Stripe call either way)",
        "config": cfg.as_dict(),
        "seed": {
            "lots": len(seeded.lot_slugs),
            "event_lot_spots": cfg.event_spots,
            "spots": seeded.spots,
            "reservations": seeded.reservations,
            "history_days": cfg.history_days,
            "history_rows": seeded.history_rows,
            "history_seconds": round(seeded.history_seconds, 1),
            "users": len(seeded.tokens),
            "seconds": round(seeded.seconds, 1),
        },
        "smoke": outcome.smoke,
        "phases": outcome.phases,
        "comparisons": comparisons,
        "checks": outcome.checks,
        "metrics": outcome.metrics,
        "problems": outcome.problems,
        "ok": not outcome.problems,
        "json_path": str(json_path),
    }
    report.write_json(full, json_path)
    print(report.render(full), flush=True)
    return 0 if not outcome.problems else 1


def _run_phases(
    cfg: BenchConfig,
    server: Server,
    seeded: database.Seeded,
    db: database.BenchDatabase,
    rng: random.Random,
    outcome: Outcome,
    cards: dict[str, str],
) -> None:
    """The phases, in order; each ParkSpot phase right after its ceiling twin, so
    that the two see the same machine (the same neighbours) as nearly as can be."""
    pg = db if db.vendor == "postgresql" else None
    now = datetime.now(UTC)

    def run(name: str, concurrency: int, seconds: float, warmup: float, factory, **kw):
        outcome.phases[name] = _run(
            name, server, concurrency, seconds, warmup, factory, db=pg, **kw
        )
        return outcome.phases[name]

    def availability(ceiling: bool) -> AvailabilityWorkload:
        # The ceiling is asked the same questions: a twin generator with the same seed.
        return AvailabilityWorkload(
            seeded.lot_slugs,
            repeat_ratio=cfg.repeat_ratio,
            rng=random.Random(cfg.seed + 1),
            now=now,
            ceiling=ceiling,
        )

    def bookings(ceiling: bool) -> BookingWorkload:
        return BookingWorkload(
            seeded.lot_slugs,
            seeded.event_slug,
            seeded.tokens,
            hot_ratio=cfg.hot_ratio,
            idempotency_keys=cfg.idempotency_keys,
            rng=random.Random(cfg.seed + 2),
            now=now,
            ceiling_spots=seeded.spot_ids if ceiling else None,
        )

    if "baseline" in cfg.phases:
        run(
            "baseline",
            cfg.concurrency,
            cfg.baseline_seconds,
            min(1.0, cfg.warmup_seconds),
            baseline_request,
            expected=(200,),
        )
    if "availability" in cfg.phases:
        conc = cfg.availability_concurrency
        if cfg.ceiling:
            run(
                "ceiling-read",
                conc,
                cfg.seconds,
                cfg.warmup_seconds,
                availability(True).request,
                expected=(200,),
            )
        avail = availability(False)
        phase = run(
            "availability", conc, cfg.seconds, cfg.warmup_seconds, avail.request, expected=(200,)
        )
        phase["mix"] = dict(avail.kinds)
        phase["repeat_share_pct"] = avail.repeat_share_pct()
    if "bookings" in cfg.phases:
        conc = cfg.bookings_concurrency
        if cfg.ceiling:
            ceiling = bookings(True)
            phase = run(
                "ceiling-book",
                conc,
                cfg.seconds,
                cfg.warmup_seconds,
                ceiling.request,
                expected=(201, 409),
            )
            phase["mix"] = dict(ceiling.ledger.kinds)
        booking = bookings(False)
        phase = run(
            "bookings",
            conc,
            cfg.seconds,
            cfg.warmup_seconds,
            booking.request,
            expected=(201, 409),
            on_response=booking.ledger.on_response,
        )
        _note_ledger(phase, booking.ledger, outcome)
    if cfg.payments and "bookings" in cfg.phases:
        paying = PayingBookingWorkload(bookings(False), cards)
        # Other windows than the bookings phase's: a fresh random stream.
        paying.bookings.rng = random.Random(cfg.seed + 3)
        phase = run(
            "paid-bookings",
            cfg.bookings_concurrency,
            cfg.seconds,
            cfg.warmup_seconds,
            paying.request,
            expected=(200, 201, 409),
            on_response=paying.on_response,
        )
        _note_ledger(phase, paying.ledger, outcome)
        phase["paid"] = paying.ledger.paid


def _note_ledger(phase: dict[str, Any], ledger: BookingLedger, outcome: Outcome) -> None:
    phase["mix"] = dict(ledger.kinds)
    phase["conflict_codes"] = dict(ledger.conflict_codes)
    outcome.booked += ledger.booked
    odd = set(ledger.conflict_codes) - {"no_spot_available"}
    if odd:
        outcome.problems.append(f"bookings: unexpected 409 codes {sorted(odd)}")


def _run(
    name: str,
    server: Server,
    concurrency: int,
    seconds: float,
    warmup_seconds: float,
    make_request: loadgen.RequestFactory,
    *,
    expected: tuple[int, ...],
    db: database.BenchDatabase | None,
    on_response: loadgen.ResponseHook | None = None,
) -> dict[str, Any]:
    """One phase: a warm-up whose numbers are dropped, then the measured run."""

    def run(label: str, duration: float) -> loadgen.PhaseResult:
        return asyncio.run(
            loadgen.run_phase(
                name=label,
                host=HOST,
                port=server.config.port,
                concurrency=concurrency,
                seconds=duration,
                make_request=make_request,
                on_response=on_response,
            )
        )

    if warmup_seconds > 0:
        log(f"{name}: warm-up {warmup_seconds:g} s at concurrency {concurrency}")
        run(f"{name}-warmup", warmup_seconds)
    log(f"{name}: {seconds:g} s at concurrency {concurrency}")
    database_name = db.name if db else ""
    sampler = ConnectionSampler(db.url if db else "", database_name)
    with sampler as connections:
        before = system.sample(server.pid, database_name)
        result = run(name, seconds)
        after = system.sample(server.pid, database_name)

    summary = report.phase_summary(result, expected=expected)
    summary["cpu"] = system.cpu_breakdown(before, after, result.requests)
    summary["pg_connections"] = connections.summary()
    lat = summary["latency_ms"]
    log(
        f"{name}: {summary['requests']} requests, {summary['req_per_s']:.0f} req/s, "
        f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, statuses {summary['statuses']}"
    )
    other = summary["cpu"]["other_pct"]
    if other >= OTHER_LOAD_WARN_PCT:
        summary["warning"] = (
            f"other processes used {other:.0f}% of the machine during this phase: "
            "the figures understate what the server can do"
        )
        log(f"warning: {summary['warning']}")
    if summary["errors"]:
        log(f"!!! {name}: {summary['errors']} UNEXPECTED ANSWERS, e.g. {result.error_samples[:3]}")
    return summary


def _judge_phases(outcome: Outcome) -> None:
    for name, phase in outcome.phases.items():
        if phase["errors"]:
            outcome.problems.append(
                f"{name}: {phase['errors']} unexpected answers (statuses {phase['statuses']}); "
                f"first: {phase['error_samples'][:2]}"
            )
        target = TARGETS.get(name)
        if target:
            phase["target_req_per_s"] = target
            if phase["req_per_s"] < target:
                log(f"note: {name} {phase['req_per_s']:.0f} req/s is below the {target} target")


def _check_metrics(outcome: Outcome, before, after, *, booked: int) -> None:
    """The server's /metrics (all workers' counters added up) against what the
    load generator saw over the phases."""
    moved = server_metrics.moved(before, after)
    outcome.metrics = moved
    log(
        f"/metrics over the phases: bookings made +{moved['bookings_made']} "
        f"(201 answers: {booked}), refused {moved['bookings_refused']}, "
        f"{moved['queries']} queries, holds open now {moved['holds_open']}"
    )
    log(f"/metrics requests by view: {moved['requests_by_view']}")
    if moved["bookings_made"] != booked:
        outcome.problems.append(
            f"/metrics counted {moved['bookings_made']} bookings made, the load saw {booked}"
        )
    seen = sum(
        phase.get("conflict_codes", {}).get("no_spot_available", 0)
        for phase in outcome.phases.values()
    )
    refused = moved["bookings_refused"].get("no_spot_available", 0)
    if refused != seen:
        outcome.problems.append(
            f"/metrics counted {refused} no_spot_available, the load saw {seen}"
        )


def _check_bookings(outcome: Outcome) -> None:
    result = database.check(outcome.booked)
    outcome.checks = {
        "overlapping": result.overlapping,
        "reservations_total": result.reservations_total,
        "booked_201": result.booked_201,
        "missing_codes": result.missing_codes[:50],
        "mismatched_codes": result.mismatched_codes[:50],
        "duplicate_codes": result.duplicate_codes,
        "seconds": round(result.seconds, 2),
    }
    problems = outcome.problems
    if result.overlapping:
        problems.append(
            f"DOUBLE BOOKING: {result.overlapping} reservations overlap another on their spot"
        )
    if result.missing_codes:
        problems.append(f"{len(result.missing_codes)} bookings answered 201 but are missing")
    if result.mismatched_codes:
        problems.append(f"{len(result.mismatched_codes)} bookings differ from what the 201 said")
    if result.duplicate_codes:
        problems.append(f"{result.duplicate_codes} reservation ids were answered twice")


async def _smoke(
    port: int, lot_slug: str, login: tuple[str, str], outcome: Outcome
) -> dict[str, Any]:
    """Register, get a token, check availability and book once, through the real API.

    A sign-up opens its account only from the link it e-mails, so the token is
    asked for the seeded smoke account."""
    email = f"smoke-{secrets.token_hex(4)}@bench.invalid"
    password = secrets.token_urlsafe(16)
    signup = json.dumps({"email": email, "password": password}).encode()
    credentials = json.dumps({"email": login[0], "password": login[1]}).encode()
    json_headers = (("Content-Type", "application/json"),)

    async def send(request: loadgen.Request) -> loadgen.Response:
        return await loadgen.send(HOST, port, request)

    began = time.perf_counter()
    register = await send(loadgen.Request("POST", "/api/v1/auth/register", signup, json_headers))
    token = await send(loadgen.Request("POST", "/api/v1/auth/token", credentials, json_headers))
    out: dict[str, Any] = {
        "register": register.status,
        "token": token.status,
        "auth_seconds": round(time.perf_counter() - began, 2),
    }
    if register.status != 201 or token.status != 200:
        outcome.problems.append(
            f"smoke: register {register.status} {register.body[:200]!r}, "
            f"token {token.status} {token.body[:200]!r}"
        )
        return out

    rng = random.Random(0)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    window = {"start": iso(start, rng), "end": iso(start + timedelta(hours=2), rng)}
    availability = await send(
        loadgen.Request(
            "GET",
            f"/api/v1/lots/{lot_slug}/availability?vehicle_type=car"
            f"&start={quote(window['start'], safe='')}&end={quote(window['end'], safe='')}",
        )
    )
    out["availability"] = availability.status
    if availability.status != 200 or not json.loads(availability.body).get("is_free"):
        outcome.problems.append(
            f"smoke: availability {availability.status} {availability.body[:300]!r}"
        )

    body = json.dumps({"lot_id": lot_slug, "vehicle_type": "car", **window}).encode()
    bearer = ("Authorization", f"Bearer {json.loads(token.body)['token']}")
    booking = await send(
        loadgen.Request("POST", "/api/v1/reservations", body, (bearer, *json_headers))
    )
    out["booking"] = booking.status
    if booking.status == 201:
        outcome.booked.append(booked_from_answer(booking.body))
    else:
        outcome.problems.append(f"smoke: booking {booking.status} {booking.body[:300]!r}")
    return out


if __name__ == "__main__":
    sys.exit(main())
