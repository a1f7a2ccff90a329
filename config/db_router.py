"""Read routing in a cluster: stale-tolerant reads go to a replica, the rest to the leader.

Only when DATABASE_REPLICA_URL is set (`make cluster`): then settings add a
`replica` alias (HAProxy's read port) and this router. Single-node ParkSpot
(`make run`, the tests, CI) has neither, and nothing here changes anything.

Which reads may be a little stale is chosen explicitly, never by default: a
view or selector runs them under `reading_replica()` (or `@replica_reads`):
availability, lot lists and pages, admin reports. Everything else, and every
read inside a transaction (the booking path, its locks), goes to the leader.
Even under `reading_replica()`, reads go to the leader when

- the client wrote in the last READ_YOUR_WRITES_SECONDS (pinned by
  `PinAfterWriteMiddleware`): a driver's availability read right after their
  own booking is exact;
- the replica is unreachable, or further behind than
  DATABASE_REPLICA_MAX_LAG_SECONDS (checked at most every
  DATABASE_REPLICA_CHECK_SECONDS per process).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

log = logging.getLogger(__name__)

REPLICA = "replica"
PIN_COOKIE = "parkspot_pin"

# The alias reads go to in this context (None: the leader), and whether this
# request's client is pinned to the leader.
_read_alias: ContextVar[str | None] = ContextVar("read_alias", default=None)
_pinned: ContextVar[bool] = ContextVar("pinned_to_leader", default=False)


def replica_configured() -> bool:
    # connections.settings is settings.DATABASES, read once (one dict lookup per call).
    return REPLICA in connections.settings


# --- replica health -------------------------------------------------------------------------

_LAG_SQL = """
SELECT CASE
  WHEN NOT pg_is_in_recovery() THEN 0
  WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
  ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
END
"""
_health_lock = threading.Lock()
_health: tuple[float, bool] = (0.0, False)  # (checked at, usable)


def replica_lag_seconds() -> float:
    """How far the replica is behind the leader, in seconds (0: replayed all it
    received, or not a replica at all). Raises DatabaseError when unreachable.

    On PostgreSQL a connection of its own, with a one-second connect timeout:
    never one from the pool, whose wait (DATABASE_POOL_TIMEOUT) is far longer."""
    connection = connections[REPLICA]
    if connection.vendor != "postgresql":
        connection.ensure_connection()
        return 0.0
    import psycopg

    params = connection.get_connection_params()
    params.pop("prepare_threshold", None)
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params["connect_timeout"] = 1
    try:
        with psycopg.connect(**params, autocommit=True) as raw, raw.cursor() as cursor:
            cursor.execute(_LAG_SQL)
            return float(cursor.fetchone()[0])
    except psycopg.Error as exc:
        raise DatabaseError(str(exc)) from exc


def replica_usable() -> bool:
    """Whether the replica is up and close enough behind; cached briefly per process.
    One thread checks at a time; the others go by the last answer meanwhile."""
    global _health
    checked_at, usable = _health
    if time.monotonic() - checked_at < settings.DATABASE_REPLICA_CHECK_SECONDS:
        return usable
    if not _health_lock.acquire(blocking=False):
        return usable
    try:
        try:
            lag = replica_lag_seconds()
        except DatabaseError as exc:
            log.warning("Replica unreachable, reading from the leader: %s", exc)
            usable = False
        else:
            usable = lag <= settings.DATABASE_REPLICA_MAX_LAG_SECONDS
            if not usable:
                log.warning("Replica %.1f s behind, reading from the leader", lag)
        _health = (time.monotonic(), usable)
    finally:
        _health_lock.release()
    return usable


def mark_replica_down() -> None:
    """Read from the leader until the next check (a replica read just failed)."""
    global _health
    _health = (time.monotonic(), False)
    connections[REPLICA].close()


def forget_replica_health() -> None:
    """Check the replica again at the next read (tests; after a failover)."""
    global _health
    _health = (0.0, False)


# --- choosing where reads go -------------------------------------------------------------


@contextmanager
def reading_replica() -> Iterator[str]:
    """Reads in this block tolerate a little staleness: they go to the replica
    when one is configured, up and close enough, and the client is not pinned.
    Yields the alias chosen."""
    alias = DEFAULT_DB_ALIAS
    if replica_configured() and not _pinned.get() and replica_usable():
        alias = REPLICA
    token = _read_alias.set(alias if alias != DEFAULT_DB_ALIAS else None)
    try:
        yield alias
    finally:
        _read_alias.reset(token)


def read_connection() -> BaseDatabaseWrapper:
    """The connection for raw SQL that tolerates staleness (under reading_replica);
    the leader's inside a transaction on it."""
    alias = _read_alias.get()
    if alias is None or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return connections[DEFAULT_DB_ALIAS]
    return connections[alias]


def replica_reads(view: Callable) -> Callable:
    """A view whose GET/HEAD reads may come from the replica (never its POSTs)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            return view(request, *args, **kwargs)
        with reading_replica() as alias:
            try:
                response = view(request, *args, **kwargs)
            except (OperationalError, InterfaceError):
                if alias != REPLICA:
                    raise
            else:
                # DRF views answer the failure themselves (config/api.py).
                if alias != REPLICA or not _database_unavailable(response):
                    return response
        # The replica died since it was last checked: a read is safe to ask
        # again, of the leader; the replica is out until checked again.
        log.warning("Replica failed mid-read; asking the leader")
        mark_replica_down()
        return view(request, *args, **kwargs)

    return wrapper


def _database_unavailable(response: HttpResponse) -> bool:
    data = getattr(response, "data", None)
    return (
        response.status_code == 503
        and isinstance(data, dict)
        and data.get("code") == "database_unavailable"
    )


class ReplicaRouter:
    """Django's database router for the `replica` alias (settings.DATABASE_ROUTERS)."""

    def db_for_read(self, model, **hints) -> str | None:
        alias = _read_alias.get()
        # Inside a transaction on the leader (a service's), reads stay with it.
        if alias is None or connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return DEFAULT_DB_ALIAS
        return alias

    def db_for_write(self, model, **hints) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # the same database, replicated

    def allow_migrate(self, db: str, app_label: str, model_name=None, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS


# --- read your own writes ------------------------------------------------------------------


def _client_key(request: HttpRequest) -> str | None:
    """Who the client is without a database read: its bearer token or session
    cookie, hashed. A token sent on an anonymous read (availability) still pins."""
    credential = request.META.get("HTTP_AUTHORIZATION") or request.COOKIES.get(
        settings.SESSION_COOKIE_NAME
    )
    if not credential:
        return None
    return "pin:" + hashlib.sha256(credential.encode()).hexdigest()[:32]


class PinAfterWriteMiddleware:
    """After a client writes, its reads go to the leader for a few seconds: a
    cookie (browsers) and a cache key on its credential (API clients)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not replica_configured():
            return self.get_response(request)
        seconds = settings.READ_YOUR_WRITES_SECONDS
        writes = request.method not in ("GET", "HEAD", "OPTIONS")
        key = _client_key(request)
        pinned = writes or PIN_COOKIE in request.COOKIES
        if not pinned and key is not None:
            pinned = bool(cache.get(key))
        token = _pinned.set(pinned)
        try:
            response = self.get_response(request)
        finally:
            _pinned.reset(token)
        if writes and response.status_code < 500:
            # Set after the write (committed by then: services own their transactions).
            response.set_cookie(PIN_COOKIE, "1", max_age=seconds, httponly=True, samesite="Lax")
            if key is not None:
                cache.set(key, 1, timeout=seconds)
        return response
