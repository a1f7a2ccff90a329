"""API plumbing shared by every app: one error format and one pagination."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from config.errors import ApplicationError

# DRF's built-in exceptions, by class, with the code our clients see.
_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def error_body(code: str, detail: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "detail": detail}
    if fields:
        body["fields"] = fields
    return body


def _flatten_fields(detail: Any, codes: Any, prefix: str = "") -> dict[str, list[dict]]:
    """Turn DRF's nested error dict into {"field.sub": [{"code", "detail"}]}."""
    out: dict[str, list[dict]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(
                _flatten_fields(value, codes.get(key) if isinstance(codes, dict) else codes, name)
            )
    elif isinstance(detail, list):
        code_list = codes if isinstance(codes, list) else [codes] * len(detail)
        for item, code in zip(detail, code_list, strict=False):
            if isinstance(item, dict | list):
                out.update(_flatten_fields(item, code, prefix))
            else:
                out.setdefault(prefix or "non_field_errors", []).append(
                    {"code": str(code), "detail": str(item)}
                )
    else:
        out.setdefault(prefix or "non_field_errors", []).append(
            {"code": str(codes), "detail": str(detail)}
        )
    return out


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ApplicationError):
        fields = {exc.field: [{"code": exc.code, "detail": exc.detail}]} if exc.field else None
        return Response(error_body(exc.code, exc.detail, fields), status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    # Imported here: rest_framework.views reads the API settings, which name
    # this module; importing it at the top makes a cycle when a system check
    # is the first to load us.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django log it and answer 500

    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_fields(exc.detail, exc.get_codes())
        first = next(iter(fields.values()))[0]
        response.data = error_body(first["code"], first["detail"], fields)
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response

    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
    if code is None:
        code = getattr(exc, "default_code", "error")
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    response.data = error_body(code, str(detail))
    return response


class Pagination(CursorPagination):
    """Stable pages even while rows are added (cursor, not offset)."""

    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"
    ordering = "-id"


def _lone_surrogate_at(value: Any, path: str = "") -> str | None:
    """Where in parsed JSON a string holds a lone surrogate, e.g. "vehicle_plate"."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "non_field_errors"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            found = _lone_surrogate_at(key, name) or _lone_surrogate_at(item, name)
            if found:
                return found.encode("utf-8", "replace").decode()
    if isinstance(value, list):
        for item in value:
            found = _lone_surrogate_at(item, path)
            if found:
                return found
    return None


class StrictJSONParser(JSONParser):
    """JSON whose strings are real text: a lone surrogate escape ("\\ud800") is
    valid JSON but no valid character, and would fail later (database, output)."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        where = _lone_surrogate_at(data)
        if where:
            raise exceptions.ValidationError(
                {where: [ErrorDetail("This holds an invalid character.", code="invalid_character")]}
            )
        return data
