"""The database cannot be reached (a failover, a restart): 503, never a 500.

While Patroni promotes a replica, connections to the old leader break and new
ones wait for HAProxy to point at the new one. Each request that meets that
answers 503 with Retry-After and the code `database_unavailable` (JSON under
/api/, a page on the website), within the connect and pool timeouts
(DATABASE_CONNECT_TIMEOUT, DATABASE_POOL_TIMEOUT). Nothing needs restarting:
the pool throws broken connections away and the next request connects afresh.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

DETAIL = "The database is unavailable for a moment (a failover?); try again shortly."


# SQLSTATE 25006: a write reached a server still in recovery. For the moment of a
# failover when HAProxy already sends to the new leader and it is still finishing
# its promotion; the same statement a moment later goes through.
READ_ONLY_SQL_TRANSACTION = "25006"


def is_database_unavailable(exc: BaseException | None) -> bool:
    """OperationalError or InterfaceError from the database (Django's, or psycopg's
    pool timeout, which Django wraps): a connection that failed, not a bad query;
    or a write refused by a server still being promoted."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    cause = getattr(exc, "__cause__", None)
    return (
        isinstance(exc, DatabaseError)
        and getattr(cause, "sqlstate", None) == READ_ONLY_SQL_TRANSACTION
    )


def database_unavailable(request: HttpRequest) -> HttpResponse:
    retry_after = str(settings.DATABASE_RETRY_AFTER_SECONDS)
    if request.path.startswith("/api/"):
        from config.api import error_body

        response: HttpResponse = JsonResponse(
            error_body("database_unavailable", DETAIL), status=503
        )
    else:
        response = render(request, "503.html", {"detail": DETAIL}, status=503)
    response["Retry-After"] = retry_after
    response["Cache-Control"] = "no-store"
    return response
