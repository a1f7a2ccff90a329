"""The receipt of a settled reservation, for API clients (the website's is
parking/views.py's reservation_receipt_view). Kept apart from api.py, the
booking hot path's module."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from parking.api import ERROR
from reservations.api import RESERVATION_ID, MoneySerializer
from reservations.selectors import Receipt, receipt_for_user


class ReceiptLineSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["parking", "extension", "overstay", "no_show", "cancellation", "refund"],
        help_text="What the money was for; `refund` lines give money back.",
    )
    label = serializers.CharField()
    amount = MoneySerializer(help_text="Positive for a charge, negative for a refund.")


class ReceiptLotSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    address = serializers.CharField()
    city = serializers.CharField()


class ReceiptSerializer(serializers.Serializer):
    reservation_id = serializers.CharField()
    status = serializers.CharField()
    lot = ReceiptLotSerializer()
    vehicle_plate = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    lines = ReceiptLineSerializer(many=True)
    charged = MoneySerializer()
    refunded = MoneySerializer()
    total = MoneySerializer(help_text="What the driver paid in the end: charged − refunded.")
    settled_at = serializers.DateTimeField()


def receipt_data(receipt: Receipt) -> dict:
    reservation, currency = receipt.reservation, receipt.currency

    def money(amount: int) -> dict:
        return {"amount": amount, "currency": currency}

    lot = reservation.lot
    return {
        "reservation_id": reservation.code,
        "status": reservation.status,
        "lot": {"id": lot.slug, "name": lot.name, "address": lot.address, "city": lot.city},
        "vehicle_plate": reservation.vehicle_plate,
        "start": reservation.start,
        "end": reservation.end,
        "lines": [
            {"kind": line.kind, "label": line.label, "amount": money(line.amount)}
            for line in receipt.lines
        ],
        "charged": money(receipt.charged),
        "refunded": money(receipt.refunded),
        "total": money(receipt.total),
        "settled_at": receipt.settled_at,
    }


class ReservationReceiptApi(APIView):
    @extend_schema(
        responses={
            200: ReceiptSerializer,
            404: OpenApiResponse(
                ERROR,
                description="`reservation_not_found` (not yours, or none), or "
                "`receipt_not_ready`: the reservation is not settled yet.",
            ),
        },
        parameters=[RESERVATION_ID],
        tags=["reservations"],
        description="What a settled reservation cost: each charge (parking, extensions, "
        "overstay, no-show or late cancellation) and each refund, as the payments recorded "
        "them, and the total.",
    )
    def get(self, request, reservation_id: str):
        receipt = receipt_for_user(user=request.user, code=reservation_id)
        return Response(ReceiptSerializer(receipt_data(receipt)).data)
