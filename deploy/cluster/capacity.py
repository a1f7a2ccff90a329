"""A short capacity measurement against a running `make cluster` (docs/scaling.md).

    python deploy/cluster/capacity.py        (CAPACITY_SECONDS=15, CAPACITY_CONCURRENCY=8)

Phases, each closed-loop (bench/loadgen.py) for CAPACITY_SECONDS:
  1. availability reads on one web node (8001) directly;
  2. bookings (each with its Idempotency-Key) on one web node (8001) directly;
  3. availability reads through nginx (both nodes);
  4. bookings through nginx (both nodes).
For each: requests per second, latency p50/p95/p99, and the CPU seconds per
request spent by the web node(s), PostgreSQL (leader and replica) and the
proxies (from /proc), from which the capacity of one web node and of the
database is estimated: a core's worth of CPU divided by CPU per request. On a
shared machine the rates are a floor; the CPU per request is the steadier figure.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from drill import PIDS, django_on_leader, make_drivers, pg_data_root  # noqa: E402

from bench.loadgen import Request, run_phase  # noqa: E402

SECONDS = float(os.environ.get("CAPACITY_SECONDS", "15"))
CONCURRENCY = int(os.environ.get("CAPACITY_CONCURRENCY", "8"))
LOT = os.environ.get("DRILL_LOT", "nyc-midtown")
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_by_group() -> dict[str, float]:
    """CPU seconds so far: per web node (its process group), PostgreSQL, proxies."""
    groups = {int((PIDS / f"web-{p}.pid").read_text()): f"web-{p}" for p in (8001, 8002)}
    # The cluster's postmasters (not the machine's other PostgreSQL) and their children.
    postmasters = {
        int(path.read_text().split()[0]) for path in pg_data_root().glob("*/postmaster.pid")
    }
    totals: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        # Own CPU plus that of children it has reaped (a backend that ended, a
        # recycled gunicorn worker), so that nothing drops out between samples.
        pgid, cpu = int(fields[2]), sum(int(f) for f in fields[11:15]) / TICK
        if pgid in groups:
            name = groups[pgid]
        elif int(entry.name) in postmasters or int(fields[1]) in postmasters:
            name = "postgresql"
        elif comm in ("haproxy", "nginx"):
            name = "proxies"
        else:
            continue
        totals[name] = totals.get(name, 0.0) + cpu
    return totals


def _pct(values: list[int], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


async def phase(name: str, port: int, make) -> dict:
    before = _cpu_by_group()
    result = await run_phase(
        name=name,
        host="127.0.0.1",
        port=port,
        concurrency=CONCURRENCY,
        seconds=SECONDS,
        make_request=make,
    )
    after = _cpu_by_group()
    n = max(result.requests, 1)
    cpu_ms = {k: round((after.get(k, 0) - before.get(k, 0)) * 1000 / n, 2) for k in after}
    return {
        "phase": name,
        "requests_per_s": round(result.rate, 1),
        "statuses": dict(result.statuses),
        "p50_ms": round(_pct(result.latencies_ns, 0.5), 1),
        "p95_ms": round(_pct(result.latencies_ns, 0.95), 1),
        "p99_ms": round(_pct(result.latencies_ns, 0.99), 1),
        "cpu_ms_per_request": cpu_ms,
    }


def main() -> None:
    django_on_leader()
    tokens = make_drivers("cap" + datetime.now(UTC).strftime("%H%M%S"), 1000)
    rng = random.Random(1)
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)

    def window() -> tuple[str, str]:
        start = base + timedelta(minutes=30 * rng.randrange(0, 48 * 60))
        end = start + timedelta(minutes=30 * rng.randrange(2, 7))
        return start.isoformat().replace("+00:00", "Z"), end.isoformat().replace("+00:00", "Z")

    def read(_index: int) -> Request:
        start, end = window()
        return Request(
            "GET", f"/api/v1/lots/{LOT}/availability?vehicle_type=car&start={start}&end={end}"
        )

    turn = [0]

    def book(_index: int) -> Request:
        start, end = window()
        turn[0] += 1
        token = tokens[turn[0] % len(tokens)]
        body = json.dumps(
            {"lot_id": LOT, "vehicle_type": "car", "start": start, "end": end}
        ).encode()
        return Request(
            "POST",
            "/api/v1/reservations",
            body=body,
            headers=(
                ("Authorization", f"Bearer {token}"),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", uuid.uuid4().hex),
            ),
        )

    async def run() -> list[dict]:
        return [
            await phase("availability, one node", 8001, read),
            await phase("bookings, one node", 8001, book),
            await phase("availability, nginx (two nodes)", 8080, read),
            await phase("bookings, nginx (two nodes)", 8080, book),
        ]

    results = asyncio.run(run())
    print(json.dumps({"seconds": SECONDS, "concurrency": CONCURRENCY, "phases": results}, indent=2))


if __name__ == "__main__":
    main()
