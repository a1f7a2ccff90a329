"""Project-level views: health check and error pages (JSON under /api/)."""

from __future__ import annotations

import sys

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults
from django.views.decorators.cache import never_cache
from drf_spectacular.views import SpectacularSwaggerView

from config.api import error_body
from config.db_errors import database_unavailable, is_database_unavailable


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """For the load balancer: 200 when the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """What Django answers itself, before or around a view: a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE, too many fields, a disallowed host."""
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        body = error_body("request_too_large", "The request body is larger than we accept.")
        return JsonResponse(body, status=413)
    if isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
        body = error_body("too_many_fields", "The request has more fields than we accept.")
        return JsonResponse(body, status=400)
    return JsonResponse(error_body("bad_request", "This request cannot be read."), status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _is_api(request):
        return defaults.permission_denied(request, exception)
    body = error_body("permission_denied", "You do not have permission to do this.")
    return JsonResponse(body, status=403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(
            error_body("not_found", "There is nothing at this address."), status=404
        )
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this inside its except block: the exception is at hand.
    if is_database_unavailable(sys.exc_info()[1]):
        return database_unavailable(request)
    if _is_api(request):
        return JsonResponse(
            error_body("server_error", "Something went wrong on our side; it has been logged."),
            status=500,
        )
    return render(request, "500.html", status=500)


class DocsView(SpectacularSwaggerView):
    # OPTIONS would describe the page as data, which its HTML renderer has no
    # template for (a 500): the docs take GET only.
    metadata_class = None
