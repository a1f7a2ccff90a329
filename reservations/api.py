"""Driver API: availability (checkCapacity), reserveSpot, and a driver's reservations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import wraps
from urllib.parse import parse_qsl

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import Pagination
from config.errors import ApplicationError, InvalidInput
from config.fields import AwareDateTimeField, MoneyField
from config.throttles import BookingThrottle
from lots.authentication import GateKeyAuthentication, IsGate
from lots.constants import VehicleType
from lots.features import (
    NO_NEEDS,
    VEHICLE_HEIGHT_MAX_CM,
    VEHICLE_HEIGHT_MIN_CM,
    SpotFeature,
    SpotNeeds,
    spot_features,
    spot_needs,
    stored_features,
)
from reservations import lean_booking, metrics
from reservations.models import (
    Actor,
    Reservation,
    ReservationExtension,
    Status,
)
from reservations.selectors import (
    Availability,
    Terms,
    lot_availability,
    payments_by_reservation,
    reservation_for_gate,
    reservation_get_for_user,
    reservation_list_for_user,
    reservation_terms,
)
from reservations.services import (
    reservation_arrive,
    reservation_cancel,
    reservation_complete,
    reservation_create,
    reservation_depart,
    reservation_extend,
)

LOT_ID = OpenApiParameter("lot_id", str, OpenApiParameter.PATH, description="The lot's id.")
RESERVATION_ID = OpenApiParameter(
    "reservation_id",
    str,
    OpenApiParameter.PATH,
    description="The reservation's code, e.g. R7K2-9QXM.",
)


class WindowSerializer(serializers.Serializer):
    vehicle_type = serializers.ChoiceField(choices=VehicleType.choices)
    start = AwareDateTimeField()
    end = AwareDateTimeField()


class FeatureField(serializers.ChoiceField):
    """A spot feature's name; anything else is 400 invalid_feature."""

    default_error_messages = {
        "invalid_feature": '"{input}" is not a spot feature: use '
        + ", ".join(SpotFeature.values)
        + "."
    }

    def __init__(self, **kwargs):
        super().__init__(choices=SpotFeature.choices, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and data in SpotFeature.values:
            return data
        self.fail("invalid_feature", input=str(data)[:40])


def features_list(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=FeatureField(), max_length=len(SpotFeature), **kwargs)


def vehicle_height_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=VEHICLE_HEIGHT_MIN_CM,
        max_value=VEHICLE_HEIGHT_MAX_CM,
        required=False,
        allow_null=True,
        default=None,
        help_text="The vehicle's height in centimetres: only a spot (and lot) it fits under.",
        **kwargs,
    )


class MoneySerializer(serializers.Serializer):
    amount = serializers.IntegerField()
    currency = serializers.CharField()


class PriceLineSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["hourly", "daily_max"],
        help_text="hourly: started hours at the hourly rate; daily_max: blocks of up to "
        "24 hours, each capped at the daily maximum.",
    )
    hours = serializers.IntegerField(help_text="How many started hours this line covers.")
    quantity = serializers.IntegerField(help_text="Hours (hourly) or 24-hour blocks (daily_max).")
    label = serializers.CharField(
        help_text="hourly: the rate rule the hours are charged at (flex rates), "
        '"base rate" beside such lines, else empty.'
    )
    unit_price = MoneySerializer()
    amount = MoneySerializer(help_text="quantity × unit_price; the lines sum to the price.")


def price_lines(lines, currency: str) -> list[dict]:
    return [
        {
            "kind": line.kind,
            "hours": line.hours,
            "quantity": line.quantity,
            "label": line.label,
            "unit_price": {"amount": line.unit_amount, "currency": currency},
            "amount": {"amount": line.amount, "currency": currency},
        }
        for line in lines
    ]


class AvailabilitySerializer(serializers.Serializer):
    lot_id = serializers.CharField()
    vehicle_type = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    is_free = serializers.BooleanField()
    free_spots = serializers.IntegerField()
    price = MoneySerializer(allow_null=True)
    price_breakdown = PriceLineSerializer(
        many=True, help_text="How the price adds up (empty when there is no price)."
    )
    no_show_charge = MoneySerializer(
        allow_null=True,
        help_text="What not showing up would cost: the first 24 hours of the window.",
    )


class AvailabilityQuerySerializer(WindowSerializer):
    features = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Comma-separated spot features (ev_charging, accessible, covered): count "
        "only spots with every one; an unknown name is 400 invalid_feature.",
    )
    vehicle_height_cm = vehicle_height_field()

    def validate_features(self, value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in SpotFeature.values]
        if unknown:
            raise serializers.ValidationError(
                f"{unknown[0][:40]!r} is not a spot feature: use "
                + ", ".join(SpotFeature.values)
                + ".",
                code="invalid_feature",
            )
        return names


class AvailabilityApi(APIView):
    """checkCapacity. The public question every visitor asks, hence the lean path
    (`as_view`): a well-formed question is answered without DRF's request
    wrapping, content negotiation, serializers and renderer, with the same bytes
    DRF would send; anything else (bad input, an unknown lot, another method or
    media type) goes the ordinary DRF way and gets its errors from there."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @classmethod
    def as_view(cls, **initkwargs):
        drf_view = super().as_view(**initkwargs)

        @wraps(drf_view)  # keeps .cls, .initkwargs and csrf_exempt for the URLconf and schema
        def view(request: HttpRequest, lot_id: str) -> HttpResponse:
            if request.method == "GET":
                response = _availability_lean(request, lot_id)
                if response is not None:
                    return response
            return drf_view(request, lot_id=lot_id)

        return view

    @extend_schema(
        parameters=[LOT_ID, AvailabilityQuerySerializer],
        responses=AvailabilitySerializer,
        tags=["lots"],
        auth=[],
    )
    def get(self, request, lot_id: str):
        window = AvailabilityQuerySerializer(data=request.query_params)
        window.is_valid(raise_exception=True)
        fields = dict(window.validated_data)
        needs = spot_needs(fields.pop("features"), fields.pop("vehicle_height_cm"))
        return Response(availability_data(lot_availability(lot_id=lot_id, needs=needs, **fields)))


def availability_data(answer: Availability) -> dict:
    """An availability answer as the API shows it (AvailabilitySerializer's shape)."""

    def money(amount: int | None) -> dict | None:
        return None if amount is None else {"amount": amount, "currency": answer.currency}

    return {
        "lot_id": answer.lot_id,
        "vehicle_type": answer.vehicle_type,
        "start": _utc_iso(answer.start),
        "end": _utc_iso(answer.end),
        "is_free": answer.is_free,
        "free_spots": answer.free_spots,
        "price": money(answer.price_amount),
        "price_breakdown": price_lines(answer.breakdown, answer.currency),
        "no_show_charge": money(answer.no_show_amount),
    }


def _utc_iso(value: datetime) -> str:
    # What DRF's DateTimeField gives with TIME_ZONE = "UTC": ISO 8601, "Z" for +00:00.
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_JSON_HEADERS = {"Content-Type": "application/json", "Allow": "GET, HEAD, OPTIONS"}


def _needs_lean(params) -> SpotNeeds | None:
    """AvailabilityQuerySerializer's features and height as SpotNeeds, or None
    where it would refuse them (or judge them otherwise)."""
    raw, height = params.get("features", ""), params.get("vehicle_height_cm")
    if not raw and height is None:
        return NO_NEEDS
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if not all(name in lean_booking.FEATURES for name in names):
        return None
    if height is not None:
        if not (height.isascii() and height.isdigit() and len(height) <= 4):
            return None
        height = int(height)
    try:
        return spot_needs(names, height)
    except ApplicationError:
        return None


def _query(request: HttpRequest) -> dict[str, str] | None:
    """The query's fields as request.GET.get reads them (the last of each),
    without building a QueryDict (half the cost); None where Django could read
    them otherwise (not ASCII: its decoding) or refuse them (too many fields)."""
    raw = request.META.get("QUERY_STRING", "")
    if not raw.isascii():
        return None
    encoding = request.encoding or settings.DEFAULT_CHARSET
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    try:
        fields = parse_qsl(raw, keep_blank_values=True, encoding=encoding, max_num_fields=limit)
    except ValueError:
        return None
    return dict(fields)


def _availability_lean(request: HttpRequest, lot_id: str) -> HttpResponse | None:
    """The answer to a well-formed availability question, or None to let DRF
    answer (and word the error). Per request this saves about a millisecond of
    CPU against the DRF path on the bench machine (bench/README.md)."""
    if not lean_booking.accepts_plain_json(request):
        return None
    params = _query(request) or request.GET
    if "format" in params:  # DRF's URL format override: let it judge
        return None
    vehicle_type = params.get("vehicle_type")
    start, end = (
        lean_booking.aware_or_none(params.get("start")),
        lean_booking.aware_or_none(params.get("end")),
    )
    if vehicle_type not in lean_booking.VEHICLE_TYPES or start is None or end is None:
        return None
    needs = _needs_lean(params)
    if needs is None:
        return None
    try:
        answer = lot_availability(
            lot_id=lot_id, vehicle_type=vehicle_type, start=start, end=end, needs=needs
        )
    except ApplicationError:
        return None
    body = json.dumps(availability_data(answer), ensure_ascii=False, separators=(",", ":"))
    return HttpResponse(body.encode(), headers=_JSON_HEADERS)


class SpotRefSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    label = serializers.CharField()
    features = serializers.SerializerMethodField()
    max_height_cm = serializers.IntegerField(
        allow_null=True, help_text="The spot's own height limit (null: the lot's)."
    )

    @extend_schema_field(serializers.ListField(child=FeatureField()))
    def get_features(self, spot) -> list[str]:
        return spot_features(spot)


class PaymentSerializer(serializers.Serializer):
    """The booking's payment; once extended, its extensions' added in (on hold
    while any hold is open)."""

    status = serializers.CharField()
    client_secret = serializers.CharField(
        allow_null=True,
        help_text="Always null: pay by passing a PaymentMethod id to complete.",
    )
    publishable_key = serializers.CharField(allow_null=True)
    amount_authorised = serializers.IntegerField()
    amount_captured = serializers.IntegerField()
    amount_refunded = serializers.IntegerField()
    currency = serializers.CharField()
    capture_mode = serializers.CharField(allow_null=True)


class OverstayRateSerializer(serializers.Serializer):
    hourly = MoneySerializer()
    daily_max = MoneySerializer()


class LateCancellationSerializer(serializers.Serializer):
    policy = serializers.ChoiceField(choices=["charge", "elapsed", "refund"])
    charge_at_most = MoneySerializer(help_text="Never more than the no-show charge.")


class TermsSerializer(serializers.Serializer):
    """What the driver commits to, from the policy module (DESIGN §4)."""

    free_cancellation_until = serializers.DateTimeField()
    price_breakdown = PriceLineSerializer(many=True, help_text="How the price adds up.")
    cancellation_charge = MoneySerializer(
        allow_null=True, help_text="What cancelling now costs; null if it cannot be cancelled."
    )
    late_cancellation = LateCancellationSerializer()
    no_show_charge = MoneySerializer()
    no_show_after = serializers.DateTimeField()
    grace_minutes = serializers.IntegerField()
    early_entry_from = serializers.DateTimeField()
    early_entry_minutes = serializers.IntegerField()
    overstay_rate = OverstayRateSerializer()
    charged_at_once = serializers.BooleanField(
        help_text="Paying now charges the card in full (the rest refunded at the end) "
        "instead of holding the amount until the stay is settled."
    )


def terms_data(terms: Terms) -> dict:
    def money(amount: int | None) -> dict | None:
        return None if amount is None else {"amount": amount, "currency": terms.currency}

    return {
        "free_cancellation_until": _utc_iso(terms.free_cancellation_until),
        "price_breakdown": price_lines(terms.breakdown, terms.currency),
        "cancellation_charge": money(terms.cancellation_charge_now),
        "late_cancellation": {
            "policy": terms.late_cancel_policy,
            "charge_at_most": money(terms.no_show_charge),
        },
        "no_show_charge": money(terms.no_show_charge),
        "no_show_after": _utc_iso(terms.no_show_after),
        "grace_minutes": terms.grace_minutes,
        "early_entry_from": _utc_iso(terms.early_entry_from),
        "early_entry_minutes": terms.early_entry_minutes,
        "overstay_rate": {
            "hourly": money(terms.overstay_hourly),
            "daily_max": money(terms.overstay_daily_max),
        },
        "charged_at_once": terms.charged_at_once,
    }


class ReservationSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="code")
    lot_id = serializers.CharField(source="lot.slug")
    lot_timezone = serializers.CharField(source="lot.timezone")
    spot = SpotRefSerializer()
    price = MoneyField("price_amount")
    overstay_charge = MoneyField("overstay_amount")
    payment = serializers.SerializerMethodField()
    terms = serializers.SerializerMethodField()
    requested_features = serializers.SerializerMethodField()

    class Meta:
        model = Reservation
        fields = [
            "id",
            "status",
            "lot_id",
            "lot_timezone",
            "spot",
            "vehicle_type",
            "vehicle_plate",
            "requested_features",
            "vehicle_height_cm",
            "start",
            "end",
            "occupied_until",
            "price",
            "hold_expires_at",
            "arrived_at",
            "departed_at",
            "created_at",
            "amount_due",
            "overstay_charge",
            "settlement",
            "terms",
            "payment",
        ]

    @extend_schema_field(serializers.ListField(child=FeatureField()))
    def get_requested_features(self, reservation: Reservation) -> list[str]:
        return stored_features(reservation.requested_features)

    @extend_schema_field(TermsSerializer)
    def get_terms(self, reservation: Reservation) -> dict:
        return terms_data(reservation_terms(reservation))

    @extend_schema_field(PaymentSerializer(allow_null=True))
    def get_payment(self, reservation: Reservation) -> dict | None:
        return payment_data(reservation, self.context.get("payments", {}).get(reservation.pk))


def payment_data(reservation: Reservation, payment) -> dict | None:
    """The reservation's payment as the API shows it (PaymentSerializer's shape)."""
    pending = reservation.status == Status.PENDING_PAYMENT
    if payment is None:
        if not (pending and settings.STRIPE_PUBLISHABLE_KEY):
            return None
        # Nothing asked of Stripe yet: the driver pays by calling complete.
        return {
            "status": "requires_payment_method",
            "client_secret": None,
            "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
            "amount_authorised": 0,
            "amount_captured": 0,
            "amount_refunded": 0,
            "currency": reservation.currency,
            "capture_mode": None,
        }
    return {
        "status": payment.status,
        "client_secret": None,
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY if pending else None,
        "amount_authorised": payment.amount_authorised,
        "amount_captured": payment.amount_captured,
        "amount_refunded": payment.amount_refunded,
        "currency": payment.currency,
        "capture_mode": payment.capture_mode,
    }


_UNKNOWN = object()


def reservation_data(reservation: Reservation, payment=_UNKNOWN) -> dict:
    """One reservation as the API shows it, with its payment (looked up unless
    given): ReservationSerializer's shape, which a test holds it to. Built by
    hand because DRF builds a ModelSerializer's fields anew for every object it
    renders: that cost each booking about 2 ms of CPU (bench/README.md)."""
    if payment is _UNKNOWN:
        payment = payments_by_reservation([reservation]).get(reservation.pk)
    lot, spot, currency = reservation.lot, reservation.spot, reservation.currency

    def money(amount: int | None) -> dict | None:
        return None if amount is None else {"amount": amount, "currency": currency}

    def when(value: datetime | None) -> str | None:
        return None if value is None else _utc_iso(value)

    return {
        "id": reservation.code,
        "status": reservation.status,
        "lot_id": lot.slug,
        "lot_timezone": lot.timezone,
        "spot": None
        if spot is None
        else {
            "id": spot.public_id,
            "label": spot.label,
            "features": spot_features(spot),
            "max_height_cm": spot.max_height_cm,
        },
        "vehicle_type": reservation.vehicle_type,
        "vehicle_plate": reservation.vehicle_plate,
        "requested_features": stored_features(reservation.requested_features),
        "vehicle_height_cm": reservation.vehicle_height_cm,
        "start": when(reservation.start),
        "end": when(reservation.end),
        "occupied_until": when(reservation.occupied_until),
        "price": money(reservation.price_amount),
        "hold_expires_at": when(reservation.hold_expires_at),
        "arrived_at": when(reservation.arrived_at),
        "departed_at": when(reservation.departed_at),
        "created_at": when(reservation.created_at),
        "amount_due": reservation.amount_due,
        "overstay_charge": money(reservation.overstay_amount),
        "settlement": reservation.settlement,
        "terms": terms_data(reservation_terms(reservation)),
        "payment": payment_data(reservation, payment),
    }


class ReservationCreateSerializer(WindowSerializer):
    lot_id = serializers.CharField(max_length=60)
    vehicle_plate = serializers.CharField(
        max_length=20, required=False, allow_blank=True, default=""
    )
    features = features_list(
        required=False,
        default=list,
        help_text="Only a spot with every one of these (409 no_spot_with_features if none "
        "is free); an unknown name is 400 invalid_feature.",
    )
    vehicle_height_cm = vehicle_height_field()


class ReservationFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Status.choices, required=False)


class ReservationPagination(Pagination):
    ordering = "-created_at"


class ReservationListCreateApi(ListAPIView):
    serializer_class = ReservationSerializer
    pagination_class = ReservationPagination

    def get_throttles(self):
        # Bookings are limited per driver (THROTTLE_BOOKING_RATE); reading is not.
        return [BookingThrottle()] if self.request.method == "POST" else []

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if self.request.method == "POST" and not isinstance(exc, ApplicationError):
            # Refused before the service was asked (validation, throttle, auth): the
            # service counts its own refusals (the website's too).
            metrics.booking_refused(reason=str(response.data.get("code", "error")))
        return response

    def get_serializer(self, *args, **kwargs):
        if args and isinstance(args[0], list):
            kwargs["context"] = {
                **self.get_serializer_context(),
                "payments": payments_by_reservation(args[0]),
            }
        return super().get_serializer(*args, **kwargs)

    def get_queryset(self):
        filters = ReservationFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return reservation_list_for_user(user=self.request.user, **filters.validated_data)

    @extend_schema(parameters=[ReservationFilterSerializer], tags=["reservations"])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="reserveSpot: hold the best free spot until it is paid for",
        description="The spot is held by the database alone for HOLD_TTL_MINUTES; nothing "
        "is asked of Stripe. Pay with `complete` and a PaymentMethod id. The answer's "
        "`terms` say what cancelling, not showing up and overstaying cost. A vehicle "
        "plate already booked anywhere for part of the window is refused "
        "(409 vehicle_already_booked). No free spot: 409 no_spot_available, or "
        "lot_closed when the lot's staff closed the whole lot over part of the window "
        "(the detail says from when until when, and why).",
        request=ReservationCreateSerializer,
        responses={201: ReservationSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Retry-safe: the same key returns the first booking, for "
                "IDEMPOTENCY_KEY_DAYS (7) days at least; then it is forgotten. Required "
                "(400 idempotency_key_required) where BOOKING_IDEMPOTENCY_KEY_REQUIRED is on, "
                "as in a cluster, whose load balancer retries a failed POST on another node.",
            )
        ],
        tags=["reservations"],
    )
    def post(self, request):
        data = ReservationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        body, created = _book(
            user=request.user, key=request.headers.get("Idempotency-Key"), **data.validated_data
        )
        response = Response(body, status=status.HTTP_201_CREATED)
        if not created:
            response["Idempotent-Replayed"] = "true"
        return response

    @classmethod
    def as_view(cls, **initkwargs):
        drf_view = super().as_view(**initkwargs)

        @wraps(drf_view)  # keeps .cls, .initkwargs and csrf_exempt for the URLconf and schema
        def view(request: HttpRequest) -> HttpResponse:
            if request.method == "POST":
                response = _book_lean(request)
                if response is not None:
                    return response
            return drf_view(request)

        return view


def _book(*, user, key: str | None, **fields) -> tuple[dict, bool]:
    """reserveSpot for a validated request: (the reservation as the API shows
    it, whether it was made now rather than replayed)."""
    key = key or None
    if key is not None and not (1 <= len(key) <= 255):
        metrics.booking_refused(reason="invalid_idempotency_key")
        raise InvalidInput(
            "Idempotency-Key must be 1 to 255 characters.", code="invalid_idempotency_key"
        )
    # cluster: nginx retries a failed POST on another node; only a key makes that safe.
    if key is None and settings.BOOKING_IDEMPOTENCY_KEY_REQUIRED:
        metrics.booking_refused(reason="idempotency_key_required")
        raise InvalidInput(
            "Send an Idempotency-Key header with every booking (any unique string, "
            "the same on a retry).",
            code="idempotency_key_required",
        )
    # Refusals from here on are counted by the service (the website's too).
    result = reservation_create(user=user, idempotency_key=key, **fields)
    # A new booking has no payment yet; a replayed one may have.
    payment = None if result.created else _UNKNOWN
    return reservation_data(result.reservation, payment=payment), result.created


def _book_lean(request: HttpRequest) -> HttpResponse | None:
    """reserveSpot's lean path (reservations/lean_booking.py), or None to let
    DRF answer: nothing is counted or written before it is sure to answer."""
    fields = lean_booking.booking_input(request)
    if fields is None:
        return None
    user = lean_booking.bearer_user(request)
    if user is None:
        return None
    request.user = user  # as DRF sets it, for the request's log line
    refused = lean_booking.throttled(request)
    if refused is not None:
        return refused
    try:
        body, created = _book(user=user, key=request.headers.get("Idempotency-Key"), **fields)
    except ApplicationError as exc:
        return lean_booking.error(exc)
    return lean_booking.created(body, replayed=not created)


class ReservationDetailApi(APIView):
    @extend_schema(
        responses=ReservationSerializer, parameters=[RESERVATION_ID], tags=["reservations"]
    )
    def get(self, request, reservation_id: str):
        reservation = reservation_get_for_user(user=request.user, code=reservation_id)
        return Response(reservation_data(reservation))


class ReservationCancelApi(APIView):
    @extend_schema(
        request=None,
        responses=ReservationSerializer,
        parameters=[RESERVATION_ID],
        tags=["reservations"],
    )
    def post(self, request, reservation_id: str):
        reservation = reservation_get_for_user(user=request.user, code=reservation_id)
        result = reservation_cancel(
            reservation_id=reservation.pk, actor=Actor.DRIVER, actor_user=request.user
        )
        return Response(reservation_data(result.reservation))


class CompleteSerializer(serializers.Serializer):
    payment_token = serializers.CharField(
        max_length=255, help_text="A Stripe PaymentMethod id (pm_…), e.g. from Stripe.js."
    )


class ReservationCompleteApi(APIView):
    @extend_schema(
        request=CompleteSerializer,
        responses=ReservationSerializer,
        parameters=[RESERVATION_ID],
        tags=["reservations"],
        summary="completeReservation: pay and confirm",
        description="Authorises the price on the card (`payment_token`: a PaymentMethod "
        "id, e.g. from Stripe.js or Stripe's API); a booking that ends more than "
        "CARD_HOLD_MAX_DAYS ahead is charged at once instead (`terms.charged_at_once`). "
        "A card saved on the driver's account (GET /me/payment-methods) pays in one tap; "
        "another driver's card is 400 `payment_method_not_yours`. "
        "402 when the card is declined (the spot stays held: try another card); 409 "
        "hold_expired or reservation_cancelled when there is nothing left to pay for.",
    )
    def post(self, request, reservation_id: str):
        data = CompleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        reservation = reservation_get_for_user(user=request.user, code=reservation_id)
        confirmed = reservation_complete(
            reservation_id=reservation.pk, payment_method_id=data.validated_data["payment_token"]
        )
        return Response(reservation_data(confirmed))


class ExtendSerializer(serializers.Serializer):
    end = AwareDateTimeField(help_text="The new end, ISO 8601 with a UTC offset.")


class ExtensionSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="1 for the booking's first extension, and so on.")
    previous_end = serializers.DateTimeField()
    end = serializers.DateTimeField()
    price = MoneySerializer(help_text="What the extra time costs (the booked rate).")
    charged_at_once = serializers.BooleanField(
        help_text="The extra time was charged to the card at once (the new end lies beyond "
        "a card hold's life) instead of held until the stay is settled."
    )


class ExtendedReservationSerializer(ReservationSerializer):
    extension = ExtensionSerializer()

    class Meta(ReservationSerializer.Meta):
        fields = [*ReservationSerializer.Meta.fields, "extension"]


def extension_data(extension: ReservationExtension) -> dict:
    field = serializers.DateTimeField()
    return {
        "number": extension.number,
        "previous_end": field.to_representation(extension.old_end),
        "end": field.to_representation(extension.new_end),
        "price": {"amount": extension.amount, "currency": extension.currency},
        "charged_at_once": extension.charged_at_once,
    }


class ReservationExtendApi(APIView):
    @extend_schema(
        request=ExtendSerializer,
        responses={200: ExtendedReservationSerializer},
        parameters=[
            RESERVATION_ID,
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Retry-safe: the same key returns (or finishes) the first extension. "
                "Required (400 idempotency_key_required) where BOOKING_IDEMPOTENCY_KEY_REQUIRED "
                "is on.",
            ),
        ],
        tags=["reservations"],
        summary="Extend a booking: a later end in the same spot",
        description="For a confirmed or parked booking whose end has not passed, while its "
        "spot stays free until the new end. The extra time costs what the longer window "
        "costs at the booked rate less the booked price (`extension.price`); it is held on "
        "the card the booking was paid with, or charged at once when the new end lies "
        "beyond a card hold's life. The answer is the reservation (new `end`, new total "
        "`price`) with the `extension`. 400 for a naive, earlier or too long end; 409 "
        "spot_taken_after (the spot is booked after the current end), lot_closed (the lot "
        "or the spot is closed before the new end), extension_too_late "
        "(the end has passed), payment_declined (the card refused: nothing changed, nothing "
        "held), extension_in_progress, illegal_transition.",
    )
    def post(self, request, reservation_id: str):
        data = ExtendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key") or None
        if key is not None and not (1 <= len(key) <= 255):
            raise InvalidInput(
                "Idempotency-Key must be 1 to 255 characters.", code="invalid_idempotency_key"
            )
        if key is None and settings.BOOKING_IDEMPOTENCY_KEY_REQUIRED:  # cluster, as booking
            raise InvalidInput(
                "Send an Idempotency-Key header with every extension (any unique string, "
                "the same on a retry).",
                code="idempotency_key_required",
            )
        reservation = reservation_get_for_user(user=request.user, code=reservation_id)
        result = reservation_extend(
            reservation_id=reservation.pk,
            end=data.validated_data["end"],
            actor_user=request.user,
            idempotency_key=key,
        )
        body = reservation_data(result.reservation)
        body["extension"] = extension_data(result.extension)
        response = Response(body)
        if result.replayed:
            response["Idempotent-Replayed"] = "true"
        return response


# --- gate API (authenticated by a gate key, scoped to the gate's lot) ------------------

GATE_CLOCK_SKEW = timedelta(minutes=2)


class GateEventSerializer(serializers.Serializer):
    reservation_id = serializers.CharField(max_length=20, required=False, allow_blank=False)
    plate = serializers.CharField(max_length=20, required=False, allow_blank=False)
    time = AwareDateTimeField(help_text="When the car passed the gate (ISO 8601 with offset).")

    def validate_time(self, value):
        if value > timezone.now() + GATE_CLOCK_SKEW:
            raise serializers.ValidationError(
                "The time is in the future; check the gate's clock.", code="time_in_future"
            )
        return value

    def validate(self, attrs):
        if bool(attrs.get("reservation_id")) == bool(attrs.get("plate")):
            raise serializers.ValidationError(
                "Give either reservation_id or plate.", code="reservation_or_plate"
            )
        return attrs


class GateReservationSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="code")
    lot_id = serializers.CharField(source="lot.slug")
    spot = SpotRefSerializer()
    charges = serializers.SerializerMethodField()

    class Meta:
        model = Reservation
        fields = [
            "id",
            "status",
            "lot_id",
            "spot",
            "vehicle_type",
            "vehicle_plate",
            "start",
            "end",
            "arrived_at",
            "departed_at",
            "charges",
        ]

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {"price": {}, "overstay": {}, "total": {}},
        }
    )
    def get_charges(self, reservation: Reservation) -> dict | None:
        if reservation.status != Status.COMPLETED:
            return None

        def money(amount: int) -> dict:
            return {"amount": amount, "currency": reservation.currency}

        return {
            "price": money(reservation.amount_due or 0),
            "overstay": money(reservation.overstay_amount),
            "total": money((reservation.amount_due or 0) + reservation.overstay_amount),
        }


class _GateApi(APIView):
    """A gate reporting a car passing: find its reservation in the gate's lot,
    then make the transition (both idempotent, as gates retry)."""

    authentication_classes = [GateKeyAuthentication]
    permission_classes = [IsGate]
    leaving = False
    transition = staticmethod(reservation_arrive)

    def post(self, request):
        data = GateEventSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = data.validated_data
        reservation = reservation_for_gate(
            lot_id=request.auth.lot_id,
            at=event["time"],
            code=event.get("reservation_id", ""),
            plate=event.get("plate", ""),
            leaving=self.leaving,
        )
        result = self.transition(
            reservation_id=reservation.pk,
            at=event["time"],
            actor=Actor.GATE,
            data={"gate": request.auth.name},
        )
        return Response(GateReservationSerializer(result.reservation).data)


def _gate_schema(summary: str):
    return extend_schema_view(
        post=extend_schema(
            request=GateEventSerializer,
            responses=GateReservationSerializer,
            tags=["gate"],
            summary=summary,
        )
    )


@_gate_schema("vehicle_arrived")
class GateArrivalApi(_GateApi):
    pass


@_gate_schema("vehicle_left")
class GateDepartureApi(_GateApi):
    leaving = True
    transition = staticmethod(reservation_depart)
