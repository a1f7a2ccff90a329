"""/metrics before and after the phases: the server's own counters must agree
with what the load generator saw (every 201 a booking made, every 409 a refusal)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench import loadgen

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

_METRICS = loadgen.Request("GET", "/metrics")
_REQUESTS = "django_http_requests_latency_seconds_by_view_method_count"


def scrape(host: str, port: int) -> Samples:
    response = asyncio.run(loadgen.send(host, port, _METRICS))
    if response.status != 200:
        raise RuntimeError(f"/metrics answered {response.status}: {response.body[:200]!r}")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.body.decode())
        for sample in family.samples
    }


def _by(samples: Samples, name: str, label: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for (sample, labels), value in samples.items():
        if sample == name:
            out[dict(labels).get(label, "")] += value
    return out


def moved(before: Samples, after: Samples) -> dict[str, Any]:
    """How the counters an operator watches moved over the phases."""

    def delta(name: str, label: str) -> dict[str, int]:
        now, then = _by(after, name, label), _by(before, name, label)
        return {key: int(now[key] - then[key]) for key in sorted(now) if now[key] - then[key]}

    return {
        "requests_by_view": delta(_REQUESTS, "view"),
        "bookings_made": sum(delta("parkspot_bookings_made_total", "vehicle_type").values()),
        "bookings_refused": delta("parkspot_bookings_refused_total", "reason"),
        "queries": int(
            sum(_by(after, "django_db_execute_total", "vendor").values())
            - sum(_by(before, "django_db_execute_total", "vendor").values())
        ),
        "holds_open": int(sum(_by(after, "parkspot_holds_open", "").values())),
    }
