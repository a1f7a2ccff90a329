"""Lots API: find lots and see their rates and spots."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import Pagination
from config.errors import InvalidInput
from lots.constants import VehicleType
from lots.hours import DAY_NAMES
from lots.models import Lot, Rate, RateRule
from lots.selectors import (
    NEAR_DEFAULT_RADIUS_M,
    NEAR_MAX_RADIUS_M,
    lot_get,
    lot_list,
    opening_hours_of,
    parse_near,
    spot_counts,
    spot_feature_counts,
)


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
    distance_m = serializers.SerializerMethodField(
        help_text="Great-circle distance from `near`, in whole metres; null without `near`."
    )

    class Meta:
        model = Lot
        fields = [
            "id",
            "name",
            "address",
            "city",
            "latitude",
            "longitude",
            "timezone",
            "currency",
            "distance_m",
        ]

    def get_distance_m(self, lot: Lot) -> int | None:
        distance = getattr(lot, "distance_m", None)
        return None if distance is None else int(distance)


class OpeningHoursSerializer(serializers.Serializer):
    weekday = serializers.ChoiceField(choices=[day.lower() for day in DAY_NAMES])
    opens = serializers.CharField(help_text="Local time at the lot, HH:MM.")
    closes = serializers.CharField(help_text="Local time at the lot, HH:MM; 24:00 is midnight.")


class RateRuleSerializer(serializers.Serializer):
    """A flex rate: what each started hour that begins while it holds costs."""

    name = serializers.CharField()
    vehicle_type = serializers.CharField(allow_null=True, help_text="null: every type.")
    kind = serializers.ChoiceField(choices=["weekly", "event"])
    weekdays = serializers.ListField(
        child=serializers.CharField(),
        help_text="weekly: the days it holds on, as opening_hours names them (monday … "
        "sunday); empty for an event.",
    )
    start_time = serializers.CharField(allow_null=True, help_text="weekly: local time, HH:MM.")
    end_time = serializers.CharField(
        allow_null=True, help_text="weekly: local time, HH:MM; 24:00 is midnight."
    )
    starts_at = serializers.DateTimeField(allow_null=True, help_text="event: first moment.")
    ends_at = serializers.DateTimeField(allow_null=True, help_text="event: end (excluded).")
    hourly = serializers.DictField(help_text="{amount, currency} per started hour.")
    priority = serializers.IntegerField()


def _rate_rule(rule: RateRule, currency: str) -> dict:
    weekly = rule.kind == RateRule.Kind.WEEKLY
    end = rule.end_time
    return {
        "name": rule.name,
        "vehicle_type": rule.vehicle_type or None,
        "kind": rule.kind,
        "weekdays": [DAY_NAMES[day].lower() for day in rule.weekday_list],
        "start_time": f"{rule.start_time:%H:%M}" if weekly else None,
        "end_time": ("24:00" if end.hour == end.minute == 0 else f"{end:%H:%M}")
        if weekly
        else None,
        "starts_at": None if weekly else rule.starts_at.isoformat(),
        "ends_at": None if weekly else rule.ends_at.isoformat(),
        "hourly": {"amount": rule.hourly_amount, "currency": currency},
        "priority": rule.priority,
    }


class SpotFeatureCountsSerializer(serializers.Serializer):
    ev_charging = serializers.IntegerField()
    accessible = serializers.IntegerField()
    covered = serializers.IntegerField()


class LotDetailSerializer(LotSerializer):
    rates = serializers.SerializerMethodField()
    rate_rules = serializers.SerializerMethodField()
    spots = serializers.SerializerMethodField()
    spot_features = serializers.SerializerMethodField()
    open_24_7 = serializers.SerializerMethodField()
    opening_hours = serializers.SerializerMethodField()

    class Meta(LotSerializer.Meta):
        fields = [
            *(f for f in LotSerializer.Meta.fields if f != "distance_m"),
            "rates",
            "rate_rules",
            "spots",
            "spot_features",
            "open_24_7",
            "opening_hours",
            "height_limit_cm",
            "entry_instructions",
        ]
        extra_kwargs = {
            "height_limit_cm": {"help_text": "Tallest vehicle that fits, in cm; null: no limit."}
        }

    def get_open_24_7(self, lot: Lot) -> bool:
        return not opening_hours_of(lot)

    @extend_schema_field(OpeningHoursSerializer(many=True))
    def get_opening_hours(self, lot: Lot) -> list[dict]:
        """Each day the lot opens (a day not listed is closed; empty: open 24/7)."""
        return [
            {
                "weekday": DAY_NAMES[weekday].lower(),
                "opens": f"{opens:%H:%M}",
                "closes": "24:00" if closes.hour == closes.minute == 0 else f"{closes:%H:%M}",
            }
            for weekday, opens, closes in opening_hours_of(lot)
        ]

    def get_rates(self, lot: Lot) -> list[dict]:
        return RateSerializer(lot.rates.all(), many=True, context={"currency": lot.currency}).data

    @extend_schema_field(RateRuleSerializer(many=True))
    def get_rate_rules(self, lot: Lot) -> list[dict]:
        """Flex rates in force or to come (lot_get prefetches them): each started
        hour is charged at the rule holding at its start (an event before a weekly
        rule, then the higher priority), else the rate; days stay capped."""
        return [_rate_rule(rule, lot.currency) for rule in lot.rate_rules.all()]

    def get_spots(self, lot: Lot) -> dict[str, int]:
        return spot_counts(lot)

    @extend_schema_field(SpotFeatureCountsSerializer)
    def get_spot_features(self, lot: Lot) -> dict[str, int]:
        """How many of the lot's active spots have each feature."""
        return spot_feature_counts(lot)


class _RadiusField(serializers.IntegerField):
    """Every refusal of radius_m has one code, invalid_radius."""

    def run_validation(self, data=serializers.empty):
        try:
            return super().run_validation(data)
        except serializers.ValidationError as exc:
            details = exc.detail if isinstance(exc.detail, list) else [exc.detail]
            raise serializers.ValidationError(
                [str(detail) for detail in details], code="invalid_radius"
            ) from None


class LotFilterSerializer(serializers.Serializer):
    city = serializers.CharField(required=False, max_length=80)
    vehicle_type = serializers.ChoiceField(choices=VehicleType.choices, required=False)
    q = serializers.CharField(
        required=False,
        max_length=120,
        help_text="Words to find in the lot's name, address or city (any case, any accents).",
    )
    near = serializers.CharField(
        required=False,
        allow_blank=True,  # refused below, with the same code as any bad value
        help_text="latitude,longitude (decimal degrees, e.g. 48.8566,2.3522): only lots "
        "within radius_m, nearest first, each with distance_m.",
    )
    radius_m = _RadiusField(
        required=False,
        min_value=1,
        max_value=NEAR_MAX_RADIUS_M,
        help_text=f"With near: how far to look, in metres (default {NEAR_DEFAULT_RADIUS_M}, "
        f"at most {NEAR_MAX_RADIUS_M}).",
    )

    def validate_near(self, value: str) -> tuple[float, float]:
        try:
            return parse_near(value)
        except InvalidInput as exc:
            raise serializers.ValidationError(exc.detail, code=exc.code) from None

    def validate(self, attrs: dict) -> dict:
        if "radius_m" in attrs and "near" not in attrs:
            raise serializers.ValidationError(
                {"radius_m": serializers.ErrorDetail("radius_m needs near.", code="near_required")}
            )
        return attrs


class LotPagination(Pagination):
    """Pages by slug; lots near a place come nearest first, in one page: at most
    page_size of them, the nearest, with no `next` (a distance is no cursor)."""

    ordering = "slug"

    def paginate_queryset(self, queryset, request, view=None):
        self.near = "near" in request.query_params
        if not self.near:
            return super().paginate_queryset(queryset, request, view)
        if request.query_params.get(self.cursor_query_param):
            raise InvalidInput(
                "Lots near a place come in one page: ask again without a cursor.",
                code="invalid_cursor",
                field=self.cursor_query_param,
            )
        self.page_size = self.get_page_size(request)
        return list(queryset[: self.page_size])

    def get_paginated_response(self, data):
        if not self.near:
            return super().get_paginated_response(data)
        return Response({"next": None, "previous": None, "results": data})


@extend_schema(
    parameters=[LotFilterSerializer],
    tags=["lots"],
    auth=[],
    description="Active lots, by id, a page at a time (cursor). With `near`, the lots within "
    f"`radius_m` (default {NEAR_DEFAULT_RADIUS_M} m, at most {NEAR_MAX_RADIUS_M} m) of that "
    "point, nearest first, each with `distance_m` (great-circle, whole metres): the nearest "
    "`page_size` (default 50, at most 200) in a single page, `next` always null. Filters "
    "combine. Bad `near` is 400 `invalid_near`, bad `radius_m` 400 `invalid_radius`.",
)
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
