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


def breakdown(tagged_ns: dict[tuple[str, int], list[int]]) -> dict[str, dict[str, float]]:
    """Latency by kind of request, by status, and by both: "hot", "spread",
    "201", "409", "hot 409"... (requests, p50, p95, p99 in ms)."""
    groups: dict[str, list[int]] = {}
    ordered = sorted(tagged_ns.items())
    for level in range(3):  # kinds first, then statuses, then kind and status
        for (tag, status), latencies in ordered:
            key = (tag, str(status), f"{tag} {status}")[level]
            groups.setdefault(key, []).extend(latencies)
    return {
        key: {"requests": len(latencies), **percentiles_ms(latencies, (50, 95, 99))}
        for key, latencies in groups.items()
    }


def compare(
    phases: dict[str, dict[str, Any]],
    aims: tuple[tuple[str, str, float, float | None], ...],
) -> dict[str, dict[str, Any]]:
    """ParkSpot's phases against their ceiling twins: the ratio of req/s, and
    whether it meets the aim (ratio, and p99 where one is set)."""
    out: dict[str, dict[str, Any]] = {}
    for name, ceiling_name, least_ratio, p99_ms in aims:
        ours, ceiling = phases.get(name), phases.get(ceiling_name)
        if not ours or not ceiling:
            continue
        ratio = ours["req_per_s"] / ceiling["req_per_s"] if ceiling["req_per_s"] else 0.0
        met = ratio >= least_ratio and (p99_ms is None or ours["latency_ms"]["p99"] <= p99_ms)
        out[name] = {
            "ceiling": ceiling_name,
            "concurrency": ours["concurrency"],
            "ratio": round(ratio, 2),
            "cpu_ratio": _cpu_ratio(ours, ceiling),
            "aim": f">= {least_ratio:g}x" + (f", p99 <= {p99_ms:g} ms" if p99_ms else ""),
            "met": met,
        }
    return out


def _cpu_ratio(ours: dict[str, Any], ceiling: dict[str, Any]) -> float:
    """The same ratio from CPU per request (ceiling's / ours): steadier on a busy machine."""

    def cost(phase: dict[str, Any]) -> float:
        cpu = phase.get("cpu", {})
        return sum(cpu.get(f"{k}_us_per_req", 0.0) for k in ("server", "database", "redis"))

    return round(cost(ceiling) / cost(ours), 2) if cost(ours) else 0.0


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
        "latency_ms": percentiles_ms(result.latencies_ns, (50, 90, 95, 99)),
        "by_kind": breakdown(result.tagged_ns),
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
        f"          load average at start {' '.join(str(x) for x in m.get('load_average', []))}"
        f", {m.get('busy_before_pct', 0):.0f}% busy just before",
        f"database  {report['database']['version']} ({report['database']['name']})",
        f"cache     {report['cache']}",
        f"server    {report['server']}",
        f"payments  {report['payments']}",
        f"load      closed loop, {report['config']['seconds']:g} s per phase after "
        f"{report['config']['warmup_seconds']:g} s warm-up; load generator on the same machine",
        f"data      {report['seed']['lots']} lots, {report['seed']['spots']} spots, "
        f"{report['seed']['reservations']} past/future reservations "
        f"({report['seed'].get('history_rows', 0)} of them {report['seed'].get('history_days', 0)}"
        f" days of history, {report['seed'].get('history_seconds', 0):.0f} s), "
        f"{report['seed']['users']} drivers (seeded in {report['seed']['seconds']:.1f} s)",
        "",
    ]
    header = (
        f"{'phase':<14}{'conc':>5}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p99 ms':>9}  statuses"
    )
    lines += [header, "-" * len(header)]
    for name, phase in report["phases"].items():
        lat = phase["latency_ms"]
        statuses = " ".join(f"{s}:{c}" for s, c in phase["statuses"].items())
        lines.append(
            f"{name:<14}{phase['concurrency']:>5}{phase['requests']:>10}"
            f"{phase['req_per_s']:>9.1f}{lat['p50']:>9.2f}{lat['p95']:>9.2f}{lat['p99']:>9.2f}"
            f"  {statuses}"
        )
    lines += _render_comparisons(report)
    lines.append("")
    for name, phase in report["phases"].items():
        cpu = phase.get("cpu", {})
        lines.append(
            f"{name:<14}CPU: machine {cpu.get('machine_busy_pct', 0):.0f}% busy = "
            + ", ".join(f"{label} {cpu.get(key + '_pct', 0):.0f}%" for label, key in _CPU_GROUPS)
        )
        lines.append(
            f"{'':<14}CPU per request: "
            + ", ".join(
                f"{label} {cpu.get(key + '_us_per_req', 0):.0f} µs"
                for label, key in _CPU_GROUPS
                if key != "other"
            )
            + f"; CPU-bound estimate {cpu.get('cpu_bound_req_per_s', 0):.0f} req/s"
        )
        for kind, lat in phase.get("by_kind", {}).items():
            if " " in kind and not kind.startswith(("hot", "spread")):
                continue  # by tag and by status; tag+status only for bookings
            lines.append(
                f"{'':<14}{kind:<12} {lat['requests']:>7} requests, p50 {lat['p50']:.1f} ms, "
                f"p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms"
            )
        pg = phase.get("pg_connections", {})
        if pg.get("samples"):
            lines.append(
                f"{'':<14}PostgreSQL connections to the bench database: peak {pg['peak']}, "
                f"mean {pg['mean']} (running a statement: peak {pg['active_peak']}, "
                f"mean {pg['active_mean']}; {pg['samples']} samples)"
            )
        for key in (
            "target_req_per_s",
            "mix",
            "repeat_share_pct",
            "conflict_codes",
            "paid",
            "warning",
        ):
            if key in phase:
                lines.append(f"{'':<14}{key.replace('_', ' ')}: {phase[key]}")
    moved = report.get("metrics")
    if moved:
        lines += [
            "",
            f"/metrics  over the phases: bookings made +{moved['bookings_made']}, refused "
            f"{moved['bookings_refused']}, {moved['queries']} queries, holds open "
            f"{moved['holds_open']}",
            f"          requests by view {moved['requests_by_view']}",
        ]
    checks = report.get("checks")
    if checks:
        lines += [
            "",
            f"overlap check   {checks['overlapping']} blocking reservations overlap another "
            f"on their spot (must be 0), over {checks['reservations_total']} rows",
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


def _render_comparisons(report: dict[str, Any]) -> list[str]:
    comparisons = report.get("comparisons") or {}
    if not comparisons:
        return []
    phases = report["phases"]
    lines = [
        "",
        f"{'against the ceiling':<22}{'ParkSpot req/s':>15}{'ceiling req/s':>15}{'ratio':>8}"
        f"{'CPU ratio':>11}  aim",
    ]
    for name, c in comparisons.items():
        ours, ceiling = phases[name], phases[c["ceiling"]]
        lines.append(
            f"{name + ' (conc ' + str(c['concurrency']) + ')':<22}{ours['req_per_s']:>15.1f}"
            f"{ceiling['req_per_s']:>15.1f}{c['ratio']:>7.2f}x{c['cpu_ratio']:>10.2f}x  "
            f"{c['aim']}: {'MET' if c['met'] else 'not met'} (p99 {ours['latency_ms']['p99']:.0f}"
            f" ms vs {ceiling['latency_ms']['p99']:.0f} ms)"
        )
    return lines


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
