"""Benchmark settings, all from the environment (see bench/README.md)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = ROOT / "var"

PHASES = ("baseline", "availability", "bookings")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _non_negative(name: str, default: int) -> int:
    value = env_int(name, default)
    if value < 0:
        raise SystemExit(f"{name} must be 0 or more, not {value}")
    return value


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _str(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


@dataclass(frozen=True)
class BenchConfig:
    # Source of truth for which database and cache to use (the bench derives its own).
    database_url: str
    redis_url: str
    # Load.
    seconds: float = 20.0
    warmup_seconds: float = 3.0
    baseline_seconds: float = 5.0
    concurrency: int = 32
    availability_concurrency: int = 32
    bookings_concurrency: int = 32
    phases: tuple[str, ...] = PHASES
    # Server.
    worker_class: str = "gthread"
    workers: int = 3
    threads: int = 4
    port: int = 0  # 0: pick a free one
    # Data.
    lots: int = 100
    spots_per_lot: int = 200
    event_spots: int = 60
    reservations_per_spot: int = 3
    # Long history: one settled booking per spot per past day, for this many days
    # (0: none), on the first `history_lots` lots (0: all of them).
    history_days: int = 0
    history_lots: int = 0
    users: int = 200
    # Workload.
    repeat_ratio: float = 0.7  # availability: share of requests drawn from popular windows
    hot_ratio: float = 0.2  # bookings: share aimed at the event lot, which sells out
    idempotency_keys: bool = True  # bookings send an Idempotency-Key
    payments: bool = False  # a paid-bookings phase against localstripe
    ceiling: bool = True  # measure the in-bench ceiling (bench/ceiling) beside each phase
    redis_db: int = 15  # Redis database of the bench server (flushed)
    seed: int = 20261125

    @classmethod
    def from_env(cls) -> BenchConfig:
        concurrency = env_int("BENCH_CONCURRENCY", 32)
        phases = tuple(
            p.strip() for p in _str("BENCH_PHASES", ",".join(PHASES)).split(",") if p.strip()
        )
        unknown = set(phases) - set(PHASES)
        if unknown:
            raise SystemExit(f"BENCH_PHASES: unknown phase(s) {sorted(unknown)}; know {PHASES}")
        worker_class = _str("BENCH_WORKER_CLASS", "gthread")
        if worker_class not in ("sync", "gthread"):
            raise SystemExit("BENCH_WORKER_CLASS must be sync or gthread")
        return cls(
            database_url=os.environ.get("DATABASE_URL", "").strip(),
            redis_url=os.environ.get("REDIS_URL", "").strip(),
            seconds=_float("BENCH_SECONDS", 20.0),
            warmup_seconds=_float("BENCH_WARMUP_SECONDS", 3.0),
            baseline_seconds=_float("BENCH_BASELINE_SECONDS", 5.0),
            concurrency=concurrency,
            availability_concurrency=env_int("BENCH_AVAILABILITY_CONCURRENCY", concurrency),
            bookings_concurrency=env_int("BENCH_BOOKINGS_CONCURRENCY", concurrency),
            phases=phases,
            worker_class=worker_class,
            workers=env_int("BENCH_WORKERS", 3),
            threads=env_int("BENCH_THREADS", 4),
            port=env_int("BENCH_PORT", 0),
            lots=env_int("BENCH_LOTS", 100),
            spots_per_lot=env_int("BENCH_SPOTS_PER_LOT", 200),
            event_spots=env_int("BENCH_EVENT_SPOTS", 60),
            reservations_per_spot=env_int("BENCH_RESERVATIONS_PER_SPOT", 3),
            history_days=_non_negative("BENCH_HISTORY_DAYS", 0),
            history_lots=_non_negative("BENCH_HISTORY_LOTS", 0),
            users=env_int("BENCH_USERS", 200),
            repeat_ratio=_float("BENCH_REPEAT_RATIO", 0.7),
            hot_ratio=_float("BENCH_HOT_RATIO", 0.2),
            idempotency_keys=env_int("BENCH_IDEMPOTENCY_KEYS", 1) == 1,
            payments=env_int("BENCH_PAYMENTS", 0) == 1,
            ceiling=env_int("BENCH_WITH_CEILING", 1) == 1,
            redis_db=env_int("BENCH_REDIS_DB", 15),
            seed=env_int("BENCH_SEED", 20261125),
        )

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["database_url"] = redact(self.database_url)
        data["redis_url"] = redact(self.redis_url)
        return data


def redact(url: str) -> str:
    """Hide a password in a URL before it is printed or saved."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"
