"""Driver API: availability (checkCapacity), reserveSpot, and a driver's reservations."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
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
from config.errors import InvalidInput
from config.fields import AwareDateTimeField, MoneyField
from lots.authentication import GateKeyAuthentication, IsGate
from lots.constants import VehicleType
from payments.selectors import payments_for
from reservations.models import Actor, Reservation, Status, payment_reference
from reservations.selectors import (
    lot_availability,
    reservation_for_gate,
    reservation_get_for_user,
    reservation_list_for_user,
)
from reservations.services import (
    reservation_arrive,
    reservation_cancel,
    reservation_complete,
    reservation_create,
    reservation_depart,
    reservation_payment_prepare,
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


class MoneySerializer(serializers.Serializer):
    amount = serializers.IntegerField()
    currency = serializers.CharField()


class AvailabilitySerializer(serializers.Serializer):
    lot_id = serializers.CharField()
    vehicle_type = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    is_free = serializers.BooleanField()
    free_spots = serializers.IntegerField()
    price = MoneySerializer(allow_null=True)


class AvailabilityApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        parameters=[LOT_ID, WindowSerializer],
        responses=AvailabilitySerializer,
        tags=["lots"],
        auth=[],
    )
    def get(self, request, lot_id: str):
        window = WindowSerializer(data=request.query_params)
        window.is_valid(raise_exception=True)
        answer = lot_availability(lot_id=lot_id, **window.validated_data)
        price = (
            None
            if answer.price_amount is None
            else {"amount": answer.price_amount, "currency": answer.currency}
        )
        field = serializers.DateTimeField()
        return Response(
            {
                "lot_id": answer.lot_id,
                "vehicle_type": answer.vehicle_type,
                "start": field.to_representation(answer.start),
                "end": field.to_representation(answer.end),
                "is_free": answer.is_free,
                "free_spots": answer.free_spots,
                "price": price,
            }
        )


class SpotRefSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    label = serializers.CharField()


class PaymentSerializer(serializers.Serializer):
    status = serializers.CharField()
    client_secret = serializers.CharField(
        allow_null=True, help_text="For Stripe.js confirmCardSetup while payment is pending."
    )
    publishable_key = serializers.CharField(allow_null=True)
    amount_authorised = serializers.IntegerField()
    amount_captured = serializers.IntegerField()
    amount_refunded = serializers.IntegerField()
    currency = serializers.CharField()
    capture_mode = serializers.CharField()


class ReservationSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="code")
    lot_id = serializers.CharField(source="lot.slug")
    lot_timezone = serializers.CharField(source="lot.timezone")
    spot = SpotRefSerializer()
    price = MoneyField("price_amount")
    payment = serializers.SerializerMethodField()

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
            "start",
            "end",
            "occupied_until",
            "price",
            "hold_expires_at",
            "arrived_at",
            "departed_at",
            "created_at",
            "amount_due",
            "payment",
        ]

    @extend_schema_field(PaymentSerializer(allow_null=True))
    def get_payment(self, reservation: Reservation) -> dict | None:
        payments = self.context.get("payments", {})
        payment = payments.get(payment_reference(reservation))
        if payment is None:
            return None
        pending = reservation.status == Status.PENDING_PAYMENT
        return {
            "status": payment.status,
            "client_secret": payment.setup_client_secret if pending else None,
            "publishable_key": settings.STRIPE_PUBLISHABLE_KEY if pending else None,
            "amount_authorised": payment.amount_authorised,
            "amount_captured": payment.amount_captured,
            "amount_refunded": payment.amount_refunded,
            "currency": payment.currency,
            "capture_mode": payment.capture_mode,
        }


_UNKNOWN = object()


def reservation_data(reservation: Reservation, payment=_UNKNOWN) -> dict:
    """One reservation as the API shows it, with its payment (looked up unless given)."""
    reference = payment_reference(reservation)
    if payment is _UNKNOWN:
        payments = payments_for(references=[reference])
    else:
        payments = {reference: payment} if payment else {}
    return ReservationSerializer(reservation, context={"payments": payments}).data


class ReservationCreateSerializer(WindowSerializer):
    lot_id = serializers.CharField(max_length=60)
    vehicle_plate = serializers.CharField(
        max_length=20, required=False, allow_blank=True, default=""
    )


class ReservationFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Status.choices, required=False)


class ReservationPagination(Pagination):
    ordering = "-created_at"


class ReservationListCreateApi(ListAPIView):
    serializer_class = ReservationSerializer
    pagination_class = ReservationPagination

    def get_serializer(self, *args, **kwargs):
        if args and isinstance(args[0], list):
            references = [payment_reference(r) for r in args[0]]
            kwargs["context"] = {
                **self.get_serializer_context(),
                "payments": payments_for(references=references),
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
        request=ReservationCreateSerializer,
        responses={201: ReservationSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Retry-safe: the same key returns the first booking.",
            )
        ],
        tags=["reservations"],
    )
    def post(self, request):
        data = ReservationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key") or None
        if key is not None and not (1 <= len(key) <= 255):
            raise InvalidInput(
                "Idempotency-Key must be 1 to 255 characters.", code="invalid_idempotency_key"
            )
        result = reservation_create(user=request.user, idempotency_key=key, **data.validated_data)
        payment = reservation_payment_prepare(reservation=result.reservation)
        response = Response(
            reservation_data(result.reservation, payment=payment), status=status.HTTP_201_CREATED
        )
        if not result.created:
            response["Idempotent-Replayed"] = "true"
        return response


class ReservationDetailApi(APIView):
    @extend_schema(
        responses=ReservationSerializer, parameters=[RESERVATION_ID], tags=["reservations"]
    )
    def get(self, request, reservation_id: str):
        reservation = reservation_get_for_user(user=request.user, code=reservation_id)
        if reservation.status == Status.PENDING_PAYMENT:
            # Finishes a payment set-up that Stripe was too slow for at booking.
            reservation_payment_prepare(reservation=reservation)
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
    )
    def post(self, request, reservation_id: str):
        data = CompleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        reservation = reservation_get_for_user(user=request.user, code=reservation_id)
        confirmed = reservation_complete(
            reservation_id=reservation.pk, payment_method_id=data.validated_data["payment_token"]
        )
        return Response(reservation_data(confirmed))


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
