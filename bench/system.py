"""What machine this is, and where its CPU time went during a phase (from /proc)."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def machine() -> dict[str, object]:
    cpu_model = "unknown"
    try:
        for line in (_PROC / "cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in (_PROC / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
                break
    except OSError:
        pass
    return {
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _stat(pid: int | str) -> tuple[str, int, float] | None:
    """(command name, parent pid, CPU seconds) of a process, or None if it is gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[1] is ppid; utime and stime are fields 14 and 15 of stat (1-based).
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


@dataclass(frozen=True)
class CpuSample:
    at: float
    busy_s: float  # all CPUs, whole machine
    server_s: float  # the gunicorn process tree
    loadgen_s: float  # this process (the load generator)
    database_s: float  # PostgreSQL: the bench database's backends and the shared helpers
    redis_s: float  # processes named redis-server


def _machine_busy() -> float:
    first = (_PROC / "stat").read_text().split("\n", 1)[0].split()
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / _TICK


def _is_bench_postgres(pid: int, database: str) -> bool:
    """A backend of the bench database, or a server-wide helper (writer, checkpointer...).

    Backends of other databases (someone's test run) are not ours: they count as
    other load."""
    try:
        title = (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    if not title.startswith("postgres: "):
        return True  # the postmaster
    words = title.split()
    # "postgres: 15/main: <user> <database> <host(port)> <state>" for a backend.
    is_backend = len(words) >= 5 and "(" in words[4]
    return not is_backend or words[3] == database


def sample(server_pid: int, database: str = "") -> CpuSample:
    stats: dict[int, tuple[str, int, float]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(entry.name)
            if stat is not None:
                stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    server, todo = 0.0, [server_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            server += stats[pid][2]
        todo.extend(children.get(pid, ()))
    own = stats.get(os.getpid())
    db = sum(
        cpu
        for pid, (name, _, cpu) in stats.items()
        if name.startswith("postgres") and _is_bench_postgres(pid, database)
    )
    redis = sum(cpu for name, _, cpu in stats.values() if name.startswith("redis-server"))
    return CpuSample(
        at=time.monotonic(),
        busy_s=_machine_busy(),
        server_s=server,
        loadgen_s=own[2] if own else 0.0,
        database_s=db,
        redis_s=redis,
    )


def busy_fraction(seconds: float = 1.0) -> float:
    """How busy the machine is right now (0..1), before we add any load."""
    before, at = _machine_busy(), time.monotonic()
    time.sleep(seconds)
    cores = len(os.sched_getaffinity(0))
    return (_machine_busy() - before) / ((time.monotonic() - at) * cores)


def cpu_breakdown(before: CpuSample, after: CpuSample, requests: int) -> dict[str, float]:
    """Machine utilisation, CPU by process group (% of the machine), and per request."""
    wall = after.at - before.at
    capacity = wall * len(os.sched_getaffinity(0))
    groups = {
        "server": after.server_s - before.server_s,
        "database": after.database_s - before.database_s,
        "redis": after.redis_s - before.redis_s,
        "loadgen": after.loadgen_s - before.loadgen_s,
    }
    busy = after.busy_s - before.busy_s
    groups["other"] = max(0.0, busy - sum(groups.values()))
    out: dict[str, float] = {"machine_busy_pct": _pct(busy, capacity)}
    for name, seconds in groups.items():
        out[f"{name}_pct"] = _pct(seconds, capacity)
        out[f"{name}_us_per_req"] = round(seconds / requests * 1e6, 1) if requests else 0.0
    # What the machine could serve if our processes had all of it: cores divided
    # by the CPU one request costs. An upper bound (no allowance for waits and
    # locks), but steady when neighbours come and go.
    ours = sum(seconds for name, seconds in groups.items() if name != "other")
    cores = len(os.sched_getaffinity(0))
    out["cpu_bound_req_per_s"] = round(requests * cores / ours, 1) if ours else 0.0
    return out


def _pct(part: float, whole: float) -> float:
    return round(part / whole * 100, 1) if whole else 0.0
