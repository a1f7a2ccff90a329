"""Turn phase results into the printed report and its JSON twin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.loadgen import TRANSPORT_ERROR, PhaseResult


def percentiles_ms(latencies_ns: list[int], qs: tuple[float, ...]) -> dict[str, float]:
    """Nearest-rank percentiles, in milliseconds."""
    if not latencies_ns:
        return {f"p{q:g}": float("nan") for q in qs}
    ordered = sorted(latencies_ns)
    n = len(ordered)
    out = {}
    for q in qs:
        rank = min(n - 1, max(0, -(-int(q * n) // 100) - 1))  # ceil(q/100 * n) - 1
        out[f"p{q:g}"] = round(ordered[rank] / 1e6, 2)
    out["max"] = round(ordered[-1] / 1e6, 2)
    out["mean"] = round(sum(ordered) / n / 1e6, 2)
    return out


def phase_summary(
    result: PhaseResult, *, expected: tuple[int, ...], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    unexpected = {
        status: count for status, count in result.statuses.items() if status not in expected
    }
    summary: dict[str, Any] = {
        "concurrency": result.concurrency,
        "seconds": round(result.duration_s, 2),
        "requests": result.requests,
        "req_per_s": round(result.rate, 1),
        "latency_ms": percentiles_ms(result.latencies_ns, (50, 90, 99)),
        "statuses": {_status_name(s): c for s, c in sorted(result.statuses.items())},
        "errors": sum(unexpected.values()),
        "error_samples": result.error_samples,
        "connections_opened": result.connects,
        "loadgen_us_per_req": round(result.client_cpu_s / result.requests * 1e6, 1)
        if result.requests
        else 0.0,
    }
    if extra:
        summary.update(extra)
    return summary


_CPU_GROUPS = (
    ("gunicorn", "server"),
    ("database", "database"),
    ("redis", "redis"),
    ("load generator", "loadgen"),
    ("other processes", "other"),
)


def _status_name(status: int) -> str:
    return "transport_error" if status == TRANSPORT_ERROR else str(status)


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "",
        "=" * 78,
        "ParkSpot benchmark",
        "=" * 78,
        f"machine   {m['cpu_model']}, {m['cores_usable']} cores, {m['ram_gib']} GiB RAM, "
        f"Linux {m['kernel']}, Python {m['python']}",
        f"database  {report['database']['version']} ({report['database']['name']})",
        f"cache     {report['cache']}",
        f"server    {report['server']}",
        f"payments  {report['payments']}",
        f"load      closed loop, {report['config']['seconds']:g} s per phase after "
        f"{report['config']['warmup_seconds']:g} s warm-up; load generator on the same machine",
        f"data      {report['seed']['lots']} lots, {report['seed']['spots']} spots, "
        f"{report['seed']['reservations']} past/future reservations, "
        f"{report['seed']['users']} drivers (seeded in {report['seed']['seconds']:.1f} s)",
        "",
    ]
    header = (
        f"{'phase':<13}{'conc':>5}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}"
        f"{'p99 ms':>9}  statuses"
    )
    lines += [header, "-" * len(header)]
    for name, phase in report["phases"].items():
        lat = phase["latency_ms"]
        statuses = " ".join(f"{s}:{c}" for s, c in phase["statuses"].items())
        lines.append(
            f"{name:<13}{phase['concurrency']:>5}{phase['requests']:>10}"
            f"{phase['req_per_s']:>9.1f}{lat['p50']:>9.2f}{lat['p90']:>9.2f}{lat['p99']:>9.2f}"
            f"  {statuses}"
        )
    lines.append("")
    for name, phase in report["phases"].items():
        cpu = phase.get("cpu", {})
        lines.append(
            f"{name:<13}CPU: machine {cpu.get('machine_busy_pct', 0):.0f}% busy = "
            + ", ".join(f"{label} {cpu.get(key + '_pct', 0):.0f}%" for label, key in _CPU_GROUPS)
        )
        lines.append(
            f"{'':<13}CPU per request: "
            + ", ".join(
                f"{label} {cpu.get(key + '_us_per_req', 0):.0f} µs"
                for label, key in _CPU_GROUPS
                if key != "other"
            )
            + f"; CPU-bound estimate {cpu.get('cpu_bound_req_per_s', 0):.0f} req/s"
        )
        for key in ("target_req_per_s", "mix", "repeat_share_pct", "conflict_codes", "warning"):
            if key in phase:
                lines.append(f"{'':<13}{key.replace('_', ' ')}: {phase[key]}")
    checks = report.get("checks")
    if checks:
        lines += [
            "",
            f"overlap check   {checks['overlapping_pairs']} overlapping pairs of blocking "
            f"reservations on one spot (must be 0), over {checks['reservations_total']} rows",
            f"201 check       {checks['booked_201']} bookings answered 201; "
            f"{len(checks['missing_codes'])} missing from the table, "
            f"{len(checks['mismatched_codes'])} with another spot/window, "
            f"{checks['duplicate_codes']} duplicate ids",
        ]
    problems = report["problems"]
    lines.append("")
    if problems:
        lines.append("!" * 78)
        lines += [f"!! {p}" for p in problems]
        lines.append("!" * 78)
    else:
        lines.append("OK: no errors, no double booking, every 201 is in the database.")
    lines.append(f"report    {report['json_path']}")
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
