"""API plumbing shared by every app: one error format and one pagination."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.utils.json import strict_constant

from config.db_errors import DETAIL as DB_UNAVAILABLE
from config.db_errors import is_database_unavailable
from config.errors import ApplicationError, InvalidInput

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
    response = _error_response(exc, context)
    request = context.get("request")
    if response is not None and request is not None:
        # Rendered as JSON whatever the view's own format (the schema's is YAML,
        # the docs' HTML): DRF renders a response with the request's renderer.
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = JSONRenderer.media_type
    return response


def _error_response(exc: Exception, context: dict) -> Response | None:
    if is_database_unavailable(exc):  # a failover: try again shortly (config/db_errors.py)
        return Response(
            error_body("database_unavailable", DB_UNAVAILABLE),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(settings.DATABASE_RETRY_AFTER_SECONDS)},
        )
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
    """Stable pages even while rows are added (cursor, not offset).

    A cursor is only base64 of `p=<position>`: anyone can write one. Its position
    is compared with the ordering column in SQL, so one that column cannot hold
    (a NUL byte on PostgreSQL, "junk" or a naive time for a timestamp) would fail
    in the database. Every bad cursor is 400 invalid_cursor, on the cursor field.
    """

    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"
    ordering = "-id"

    def paginate_queryset(self, queryset, request, view=None):
        self._model = queryset.model  # for decode_cursor, which DRF gives no queryset
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:  # DRF's answer to a cursor it cannot decode
            cursor = None
            valid = False
        else:
            valid = cursor is None or cursor.position is None or self._holds(cursor.position)
        if not valid:
            raise InvalidInput(
                "This page cursor is not one we gave out; start again from the first page.",
                code="invalid_cursor",
                field=self.cursor_query_param,
            )
        return cursor

    def _holds(self, position: str) -> bool:
        """Whether the ordering column can hold this position, as Django will send it."""
        if "\x00" in position:
            return False
        try:
            field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        except FieldDoesNotExist:  # an annotation: compared as text
            return True
        try:
            value = field.to_python(position)
            if isinstance(value, datetime):
                # We write aware times; a naive one would be read in UTC with a warning.
                if value.utcoffset() is None:
                    return False
                value.astimezone(UTC)  # overflows past year 9999 (SQLite stores UTC)
        except (ValidationError, ValueError, TypeError, OverflowError):
            return False
        return True


# --- JSON bodies -------------------------------------------------------------------------

# No body we take nests more than a few levels. Python's decoder recurses, and a
# body nested about a thousand deep ran it out of stack (RecursionError, a 500).
MAX_JSON_DEPTH = 32
# No number we take needs more than 64 bits; a longer one would overflow the
# database, and past 4,300 digits Python refuses to read it at all.
_INT_RANGE = range(-(2**63), 2**63)
# NUL is refused by PostgreSQL in text; a lone surrogate ("\ud800") is valid
# JSON but no character, and fails when encoded (database, output).
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


class _NumberOutOfRange(Exception):
    pass


def _json_int(text: str) -> int:
    if len(text) > 20 or (value := int(text)) not in _INT_RANGE:
        raise _NumberOutOfRange
    return value


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 reads as infinity
        raise _NumberOutOfRange
    return value


def _first_bad_value(data: Any) -> tuple[str, str] | None:
    """(code, where) of a value no endpoint takes, e.g. ("invalid_character",
    "vehicle_plate"). A loop, not recursion: the data may nest deep."""
    stack = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if _NOT_TEXT.search(value):
                return "invalid_character", path
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                return "too_deeply_nested", path
            pairs = value.items() if isinstance(value, dict) else ((None, v) for v in value)
            for key, item in pairs:
                name = path if key is None else f"{path}.{key}" if path else key
                if key is not None and _NOT_TEXT.search(key):
                    return "invalid_character", name
                stack.append((item, name, depth + 1))
    return None


_BAD_VALUE_DETAILS = {
    "invalid_character": "This holds an invalid character.",
    "too_deeply_nested": f"The JSON nests more than {MAX_JSON_DEPTH} levels deep.",
}


def parse_json_object(raw: bytes, encoding: str = "utf-8") -> dict[str, Any]:
    """A request body as every endpoint takes it: one JSON object of real text,
    shallow, with numbers that fit 64 bits. Anything else raises InvalidInput
    with a code (the API and the Stripe webhook answer it as a 400)."""
    try:
        data = json.loads(
            raw.decode(encoding),
            parse_constant=strict_constant,  # NaN, Infinity
            parse_int=_json_int,
            parse_float=_json_float,
        )
    except RecursionError:
        raise InvalidInput(
            _BAD_VALUE_DETAILS["too_deeply_nested"], code="too_deeply_nested"
        ) from None
    except _NumberOutOfRange:
        raise InvalidInput(
            "A number is out of range (at most 64 bits, finite).", code="number_out_of_range"
        ) from None
    except ValueError as exc:  # not JSON, or not in the declared charset
        raise InvalidInput(f"JSON parse error - {exc}", code="malformed_request") from None
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.", code="not_an_object")
    bad = _first_bad_value(data)
    if bad:
        code, where = bad
        # The path is echoed back: no bad character in it, and not a megabyte of it.
        where = _NOT_TEXT.sub("\ufffd", where)[:200] or "non_field_errors"
        raise InvalidInput(_BAD_VALUE_DETAILS[code], code=code, field=where)
    return data


class StrictJSONParser(JSONParser):
    """JSON bodies checked once for every endpoint (parse_json_object), so that no
    view meets a list, a NUL byte or a thousand-deep nesting in request.data."""

    def parse(self, stream, media_type=None, parser_context=None):
        return parse_json_object(stream.read(), get_encoding(parser_context or {}))
