"""Lots API: find lots and see their rates and spots."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import Pagination
from lots.constants import VehicleType
from lots.models import Lot, Rate
from lots.selectors import lot_get, lot_list, spot_counts


class RateSerializer(serializers.ModelSerializer):
    hourly = serializers.SerializerMethodField()
    daily_max = serializers.SerializerMethodField()

    class Meta:
        model = Rate
        fields = ["vehicle_type", "hourly", "daily_max"]

    def _money(self, amount: int) -> dict:
        return {"amount": amount, "currency": self.context["currency"]}

    def get_hourly(self, rate: Rate) -> dict:
        return self._money(rate.hourly_amount)

    def get_daily_max(self, rate: Rate) -> dict:
        return self._money(rate.daily_max_amount)


class LotSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="slug")
    latitude = serializers.FloatField(allow_null=True)
    longitude = serializers.FloatField(allow_null=True)

    class Meta:
        model = Lot
        fields = ["id", "name", "address", "city", "latitude", "longitude", "timezone", "currency"]


class LotDetailSerializer(LotSerializer):
    rates = serializers.SerializerMethodField()
    spots = serializers.SerializerMethodField()

    class Meta(LotSerializer.Meta):
        fields = [*LotSerializer.Meta.fields, "rates", "spots"]

    def get_rates(self, lot: Lot) -> list[dict]:
        return RateSerializer(lot.rates.all(), many=True, context={"currency": lot.currency}).data

    def get_spots(self, lot: Lot) -> dict[str, int]:
        return spot_counts(lot)


class LotFilterSerializer(serializers.Serializer):
    city = serializers.CharField(required=False, max_length=80)
    vehicle_type = serializers.ChoiceField(choices=VehicleType.choices, required=False)


class LotPagination(Pagination):
    ordering = "slug"


@extend_schema(parameters=[LotFilterSerializer], tags=["lots"], auth=[])
class LotListApi(ListAPIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    serializer_class = LotSerializer
    pagination_class = LotPagination

    def get_queryset(self):
        filters = LotFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return lot_list(**filters.validated_data)


class LotDetailApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        responses=LotDetailSerializer,
        parameters=[OpenApiParameter("lot_id", str, OpenApiParameter.PATH)],
        tags=["lots"],
        auth=[],
    )
    def get(self, request, lot_id: str):
        return Response(LotDetailSerializer(lot_get(lot_id=lot_id)).data)
