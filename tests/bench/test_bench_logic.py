"""The bench's own logic, fast: settings, workload, report, ceiling wiring.
(The bench itself, `make bench`, is not part of the test suite.)"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from bench import report
from bench.config import BenchConfig
from bench.loadgen import PhaseResult, Request, Response
from bench.main import AIMS
from bench.pgstat import ConnectionStats
from bench.server import server_env
from bench.workload import (
    AvailabilityWorkload,
    BookingWorkload,
    PayingBookingWorkload,
)

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
LOTS = ["bench-0000", "bench-0001"]


def _clear_bench_env(monkeypatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("BENCH_"):
            monkeypatch.delenv(name)


def test_history_and_ceiling_options_are_read_from_the_environment(monkeypatch):
    _clear_bench_env(monkeypatch)
    monkeypatch.setenv("BENCH_HISTORY_DAYS", "365")
    monkeypatch.setenv("BENCH_HISTORY_LOTS", "100")
    monkeypatch.setenv("BENCH_WITH_CEILING", "0")
    monkeypatch.setenv("BENCH_PAYMENTS", "1")
    cfg = BenchConfig.from_env()
    assert (cfg.history_days, cfg.history_lots, cfg.ceiling, cfg.payments) == (
        365,
        100,
        False,
        True,
    )


def test_defaults_have_no_long_history_and_measure_the_ceiling(monkeypatch):
    _clear_bench_env(monkeypatch)
    cfg = BenchConfig.from_env()
    assert (cfg.history_days, cfg.history_lots, cfg.ceiling, cfg.payments) == (0, 0, True, False)


@pytest.mark.parametrize("name", ["BENCH_HISTORY_DAYS", "BENCH_HISTORY_LOTS"])
def test_a_negative_history_is_refused(monkeypatch, name):
    _clear_bench_env(monkeypatch)
    monkeypatch.setenv(name, "-1")
    with pytest.raises(SystemExit, match=name):
        BenchConfig.from_env()


def test_the_ceiling_is_asked_the_same_availability_questions():
    ours = AvailabilityWorkload(LOTS, repeat_ratio=0.7, rng=random.Random(5), now=NOW)
    ceiling = AvailabilityWorkload(
        LOTS, repeat_ratio=0.7, rng=random.Random(5), now=NOW, ceiling=True
    )
    for user in range(50):
        a, b = ours.request(user), ceiling.request(user)
        assert a.path.startswith("/api/v1/lots/")
        assert b.path.startswith("/bench-ceiling/lots/")
        assert a.path.split("?")[1] == b.path.split("?")[1]
        assert a.tag == b.tag
        assert a.tag in ("repeated", "unique")


def _bookings(**kw) -> BookingWorkload:
    return BookingWorkload(
        LOTS,
        "bench-event",
        ["token-a", "token-b"],
        hot_ratio=0.5,
        idempotency_keys=True,
        rng=random.Random(7),
        now=NOW,
        **kw,
    )


def test_ceiling_bookings_name_a_spot_of_the_lot_and_type_asked_for():
    spots = {
        (lot, vt): [hash((lot, vt, n)) % 10_000 for n in range(3)]
        for lot in [*LOTS, "bench-event"]
        for vt in ("car", "van", "motorcycle")
    }
    ours, ceiling = _bookings(), _bookings(ceiling_spots=spots)
    for user in range(40):
        a, b = ours.request(user), ceiling.request(user)
        asked, body = json.loads(a.body), json.loads(b.body)
        assert b.path == "/bench-ceiling/bookings"
        assert body["spot"] in spots[(asked["lot_id"], asked["vehicle_type"])]
        assert (body["start"], body["end"]) == (asked["start"], asked["end"])
        assert a.tag == b.tag == ("hot" if asked["lot_id"] == "bench-event" else "spread")


def test_a_driver_whose_booking_was_made_pays_for_it_next_with_their_card():
    paying = PayingBookingWorkload(_bookings(), {"token-a": "pm_a", "token-b": "pm_b"})
    booking = paying.request(3)
    token = dict(booking.headers)["Authorization"].removeprefix("Bearer ")
    answer = {
        "id": "R7K2-9QXM",
        "spot": {"id": "sp_1"},
        "start": "2026-12-02T10:00:00Z",
        "end": "2026-12-02T12:00:00Z",
    }
    paying.on_response(3, booking, Response(201, json.dumps(answer).encode()))
    complete = paying.request(3)
    assert complete.path == "/api/v1/reservations/R7K2-9QXM/complete"
    assert complete.tag == "complete"
    assert dict(complete.headers)["Authorization"] == f"Bearer {token}"
    assert json.loads(complete.body) == {"payment_token": f"pm_{token[-1]}"}
    paying.on_response(3, complete, Response(200, b"{}"))
    assert paying.ledger.paid == 1
    assert paying.request(3).path == "/api/v1/reservations"  # then books again


def test_latency_is_reported_by_kind_by_status_and_by_both():
    ms = 1_000_000
    result = PhaseResult(name="bookings", concurrency=2)
    result.tagged_ns = {
        ("hot", 409): [1 * ms, 2 * ms],
        ("spread", 201): [10 * ms],
        ("hot", 201): [5 * ms],
    }
    kinds = report.breakdown(result.tagged_ns)
    assert list(kinds)[:2] == ["hot", "spread"]
    assert (kinds["hot"]["requests"], kinds["hot"]["p99"]) == (3, 5.0)
    assert (kinds["409"]["requests"], kinds["409"]["p50"]) == (2, 1.0)
    assert kinds["201"]["requests"] == 2
    assert kinds["hot 409"]["p99"] == 2.0


def _phase(req_per_s: float, p99: float, server_us: float) -> dict:
    return {
        "concurrency": 32,
        "req_per_s": req_per_s,
        "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": p99},
        "cpu": {"server_us_per_req": server_us, "database_us_per_req": 0, "redis_us_per_req": 0},
    }


def test_ratios_to_the_ceiling_and_the_aims():
    phases = {
        "availability": _phase(1700, 40, 1200),
        "ceiling-read": _phase(2000, 30, 1000),
        "bookings": _phase(450, 170, 3000),
        "ceiling-book": _phase(800, 60, 1500),
    }
    compared = report.compare(phases, AIMS)
    assert compared["availability"]["ratio"] == 0.85
    assert compared["availability"]["cpu_ratio"] == 0.83
    assert compared["availability"]["met"] is True
    assert compared["bookings"]["ratio"] == 0.56
    assert compared["bookings"]["met"] is False  # fast enough, but p99 170 ms > 150 ms
    phases["bookings"]["latency_ms"]["p99"] = 140
    assert report.compare(phases, AIMS)["bookings"]["met"] is True
    del phases["ceiling-book"]
    assert "bookings" not in report.compare(phases, AIMS)  # no ceiling measured, no ratio


def test_the_report_prints_the_ratios_the_machine_and_the_connections():
    phases = {
        "availability": _phase(1700, 40, 1200),
        "ceiling-read": _phase(2000, 30, 1000),
    }
    for phase in phases.values():
        phase.update(requests=10, statuses={"200": 10}, by_kind={})
    phases["availability"]["pg_connections"] = ConnectionStats([(12, 1), (14, 3)]).summary()
    text = report.render(
        {
            "machine": {
                "cpu_model": "Test CPU",
                "cores_usable": 2,
                "ram_gib": 4,
                "kernel": "6",
                "python": "3.11",
                "load_average": [1.5, 1.0, 0.5],
                "busy_before_pct": 12,
            },
            "database": {"version": "PostgreSQL 15", "name": "x_bench"},
            "cache": "Redis",
            "server": "gunicorn",
            "payments": "off",
            "config": {"seconds": 20, "warmup_seconds": 3},
            "seed": {"lots": 1, "spots": 2, "reservations": 3, "users": 4, "seconds": 1.0},
            "phases": phases,
            "comparisons": report.compare(phases, AIMS),
            "problems": [],
            "json_path": "var/x.json",
        }
    )
    assert "Test CPU, 2 cores" in text
    assert "load average at start 1.5 1.0 0.5" in text
    line = next(x for x in text.splitlines() if x.startswith("availability (conc 32)"))
    assert "0.85x" in line
    assert ">= 0.8x: MET" in line
    assert "PostgreSQL connections to the bench database: peak 14, mean 13.0" in text


def test_connection_samples_summarise_to_peak_and_mean():
    assert ConnectionStats([(10, 0), (14, 2), (12, 4)]).summary() == {
        "samples": 3,
        "peak": 14,
        "mean": 12.0,
        "active_peak": 4,
        "active_mean": 2.0,
    }
    assert ConnectionStats().summary() == {"samples": 0}


def test_the_server_never_gets_the_developers_stripe_account(monkeypatch):
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_someone")
    monkeypatch.setenv("STRIPE_API_BASE", "https://api.stripe.com")
    env = server_env("postgres://x/y_bench", "", stripe=None, ceiling=True)
    assert "STRIPE_SECRET_KEY" not in env
    assert "STRIPE_API_BASE" not in env
    assert env["BENCH_CEILING"] == "1"
    env = server_env("postgres://x/y_bench", "", stripe={"STRIPE_SECRET_KEY": "sk_test_l"})
    assert env["STRIPE_SECRET_KEY"] == "sk_test_l"


def test_requests_tags_are_not_sent():
    request = Request("GET", "/healthz", tag="hot")
    assert b"hot" not in request.encode("127.0.0.1:1")
