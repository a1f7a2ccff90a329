"""Django's database backends with every query counted and timed, for /metrics.

django-prometheus's backends do the same with a general-purpose cursor that
looks its metrics up on every query (10 µs a query on the bench machine, in
multiprocess mode); these bind them once per cursor class, so a query pays for
two clock reads and three counter writes (5 µs). The metrics are
django-prometheus's own: django_db_execute_total, django_db_query_duration_seconds,
django_db_errors_total.
"""

from __future__ import annotations

from functools import lru_cache
from time import perf_counter

from django_prometheus.db.metrics import errors_total, execute_total, query_duration_seconds


@lru_cache(maxsize=32)
def timed_cursor_class(cursor_class: type, alias: str, vendor: str) -> type:
    executed = execute_total.labels(alias, vendor)
    duration = query_duration_seconds.labels(alias, vendor)

    class TimedCursor(cursor_class):
        def execute(self, *args, **kwargs):
            started = perf_counter()
            try:
                return super().execute(*args, **kwargs)
            except Exception as exc:
                errors_total.labels(alias, vendor, type(exc).__name__).inc()
                raise
            finally:
                duration.observe(perf_counter() - started)
                executed.inc()

        def executemany(self, query, param_list, *args, **kwargs):
            started = perf_counter()
            try:
                return super().executemany(query, param_list, *args, **kwargs)
            except Exception as exc:
                errors_total.labels(alias, vendor, type(exc).__name__).inc()
                raise
            finally:
                duration.observe(perf_counter() - started)
                executed.inc(len(param_list) if hasattr(param_list, "__len__") else 1)

    TimedCursor.__name__ = TimedCursor.__qualname__ = f"Timed{cursor_class.__name__}"
    return TimedCursor
