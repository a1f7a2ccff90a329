"""PostgreSQL connections to the bench database while a phase runs (issue #11).

A thread samples pg_stat_activity every `interval` seconds from its own
connection (to the maintenance database, so that it never counts itself):
how many connections the server holds open to the bench database, and how many
of them are running a statement."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

_QUERY = """
SELECT COUNT(*), COUNT(*) FILTER (WHERE state = 'active')
FROM pg_stat_activity WHERE datname = %s
"""


@dataclass
class ConnectionStats:
    """Samples of (open, active) connections; summarised for the report."""

    samples: list[tuple[int, int]] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        if not self.samples:
            return {"samples": 0}
        opened = [o for o, _ in self.samples]
        active = [a for _, a in self.samples]
        return {
            "samples": len(self.samples),
            "peak": max(opened),
            "mean": round(sum(opened) / len(opened), 1),
            "active_peak": max(active),
            "active_mean": round(sum(active) / len(active), 1),
        }


class ConnectionSampler:
    """`with ConnectionSampler(url, name) as stats:` samples until the block ends.
    Does nothing (no samples) for SQLite, where there is no server to ask."""

    def __init__(self, database_url: str, database_name: str, interval: float = 0.25) -> None:
        self.url = database_url
        self.name = database_name
        self.interval = interval
        self.stats = ConnectionStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ConnectionStats:
        if self.name:
            self._thread = threading.Thread(target=self._run, name="pg-connections", daemon=True)
            self._thread.start()
        return self.stats

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        parts = urlsplit(self.url)
        maintenance = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
        try:
            conn = psycopg.connect(maintenance, autocommit=True, application_name="bench-sampler")
        except psycopg.Error:
            return
        with conn:
            while not self._stop.is_set():
                row = conn.execute(_QUERY, [self.name]).fetchone()
                if row is not None:
                    self.stats.samples.append((int(row[0]), int(row[1])))
                self._stop.wait(self.interval)
