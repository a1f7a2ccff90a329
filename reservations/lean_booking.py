"""reserveSpot's lean path: a well-formed booking from a client with a bearer
token is made without DRF's request wrapping, content negotiation, serializers
and renderer, with the bytes DRF would send. Anything unusual (another media
type, a body the serializer would refuse or word differently, no bearer token,
a token DRF must refuse) goes the ordinary DRF way before anything is counted
or written, and gets its errors from there. About a millisecond of CPU a
booking on the bench machine (bench/README.md)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from rest_framework import exceptions

from config.api import exception_handler, parse_json_object
from config.errors import ApplicationError, InvalidInput
from config.fields import parse_aware
from config.throttles import BookingThrottle
from lots.constants import VehicleType
from lots.features import VEHICLE_HEIGHT_MAX_CM, VEHICLE_HEIGHT_MIN_CM, SpotFeature
from parking.authentication import BearerTokenAuthentication
from reservations import metrics

# What the lean paths (this booking one and availability's) accept as they stand.
VEHICLE_TYPES = frozenset(VehicleType.values)
FEATURES = frozenset(SpotFeature.values)
# What DRF's negotiation would answer with JSON (our only renderer) without asking.
_PLAIN_ACCEPT = frozenset({"", "*/*", "application/json"})
_HEADERS = {
    "Content-Type": "application/json",
    "Allow": "GET, POST, HEAD, OPTIONS",
}
_FIELDS = frozenset({"lot_id", "vehicle_type", "start", "end", "vehicle_plate"})


def accepts_plain_json(request: HttpRequest) -> bool:
    """Whether DRF would answer this request with JSON without negotiating."""
    return request.META.get("HTTP_ACCEPT", "").strip() in _PLAIN_ACCEPT


def booking_input(request: HttpRequest) -> dict[str, Any] | None:
    """ReservationCreateSerializer's validated data for a body it would accept
    as it stands, or None to let DRF judge (and word the error)."""
    if not accepts_plain_json(request):
        return None
    if request.content_type != "application/json" or "format" in request.GET:
        return None
    if (request.encoding or "utf-8").lower().replace("-", "") != "utf8":
        return None
    try:
        data = parse_json_object(request.body)
    except InvalidInput:
        return None
    texts = {name: data[name] for name in _FIELDS & data.keys()}
    if any(not isinstance(value, str) or "\x00" in value for value in texts.values()):
        return None
    lot_id = texts.get("lot_id", "").strip()  # DRF's CharField trims
    plate = texts.get("vehicle_plate", "").strip()
    vehicle_type = texts.get("vehicle_type")
    start, end = aware_or_none(texts.get("start")), aware_or_none(texts.get("end"))
    if not lot_id or len(lot_id) > 60 or len(plate) > 20 or vehicle_type not in VEHICLE_TYPES:
        return None
    if start is None or end is None:
        return None
    features = data.get("features", [])
    height = data.get("vehicle_height_cm")
    if not isinstance(features, list) or len(features) > len(FEATURES):
        return None
    if any(not isinstance(name, str) or name not in FEATURES for name in features):
        return None
    if height is not None and (
        type(height) is not int or not VEHICLE_HEIGHT_MIN_CM <= height <= VEHICLE_HEIGHT_MAX_CM
    ):
        return None
    return {
        "lot_id": lot_id,
        "vehicle_type": vehicle_type,
        "start": start,
        "end": end,
        "vehicle_plate": plate,
        "features": features,
        "vehicle_height_cm": height,
    }


def aware_or_none(raw: str | None) -> datetime | None:
    """AwareDateTimeField's parsing, None where it would refuse."""
    try:
        return None if raw is None else parse_aware(raw)
    except ValueError:
        return None


def bearer_user(request: HttpRequest):
    """The user of a valid bearer token, or None to let DRF authenticate (and
    refuse: no token, a session, a bad or expired token)."""
    try:
        found = BearerTokenAuthentication().authenticate(request)
    except exceptions.APIException:
        return None
    return None if found is None else found[0]


def throttled(request: HttpRequest) -> HttpResponse | None:
    """429 if the driver (request.user) is over THROTTLE_BOOKING_RATE, as DRF says it."""
    throttle = BookingThrottle()
    if throttle.allow_request(request, None):
        return None
    metrics.booking_refused(reason="throttled")
    refused = exceptions.Throttled(throttle.wait())
    response = error(refused)
    response["Retry-After"] = str(int(refused.wait))
    return response


def error(exc: ApplicationError | exceptions.APIException) -> HttpResponse:
    """The error as DRF answers it (config.api.exception_handler)."""
    refusal = exception_handler(exc, {})
    return _json(refusal.data, status=refusal.status_code)


def created(data: dict, *, replayed: bool) -> HttpResponse:
    response = _json(data, status=201)
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def _json(data: Any, *, status: int) -> HttpResponse:
    # DRF's JSONRenderer with our settings (UNICODE_JSON, COMPACT_JSON), and
    # its escapes of the two line separators JavaScript would choke on.
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    body = body.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return HttpResponse(body.encode(), status=status, headers=_HEADERS)
