"""Reads about lots."""

from __future__ import annotations

import math
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, time
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from django.db import connection
from django.db.models import Count, FloatField, Prefetch, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_time

from config.db_router import read_connection
from config.errors import InvalidInput, NotFound
from lots.constants import VehicleType
from lots.features import FEATURE_FIELDS
from lots.hours import Hours
from lots.models import Lot, LotStaff, OpeningHours, Rate, RateRule, search_key
from lots.pricing import FlexRule, PriceLine, Tariff

# Mean Earth radius (IUGG), in metres: the haversine distance with it is within
# 0.5 % of the geodesic one anywhere on Earth.
EARTH_RADIUS_M = 6_371_008.8
NEAR_DEFAULT_RADIUS_M = 10_000
NEAR_MAX_RADIUS_M = 100_000


def lot_list(
    *,
    city: str | None = None,
    vehicle_type: str | None = None,
    q: str | None = None,
    near: tuple[float, float] | None = None,
    radius_m: int | None = None,
) -> QuerySet[Lot]:
    """Active lots, by slug; with `near`, only those within `radius_m` metres,
    nearest first, each with `distance_m`."""
    lots = Lot.objects.filter(is_active=True)
    if city:
        lots = lots.filter(city__iexact=city.strip())
    if q:
        lots = lots_matching(lots, q)
    if vehicle_type:
        lots = lots.filter(
            rates__vehicle_type=vehicle_type,
            spots__vehicle_type=vehicle_type,
            spots__is_active=True,
        ).distinct()
    if near is not None:
        return lots_near(lots, *near, radius_m=radius_m or NEAR_DEFAULT_RADIUS_M)
    return lots.order_by("slug")


def parse_near(text: str) -> tuple[float, float]:
    """ "48.8566,2.3522" -> (48.8566, 2.3522); InvalidInput (invalid_near) otherwise."""
    parts = text.split(",") if len(text) <= 64 else []
    try:
        lat, lng = (float(part) for part in parts)
    except ValueError:
        lat = lng = math.nan
    if not (math.isfinite(lat) and math.isfinite(lng) and -90 <= lat <= 90 and -180 <= lng <= 180):
        raise InvalidInput(
            "Give near as latitude,longitude in decimal degrees, e.g. 48.8566,2.3522 "
            "(latitude -90 to 90, longitude -180 to 180).",
            code="invalid_near",
            field="near",
        )
    return lat, lng


def lots_matching(lots: QuerySet[Lot], text: str) -> QuerySet[Lot]:
    """Lots whose name, address or city hold every word of `text`, whatever the
    case and accents ("opera paris" finds "Paris Opéra")."""
    for word in search_key(text).split()[:8]:
        lots = lots.filter(search_text__contains=word)
    return lots


# Great-circle distance in whole metres (half up) from the point with latitude φ1
# and longitude λ1 to the lot: a = sin²(Δφ/2) + cos φ1 cos φ2 sin²(Δλ/2), d = 2R
# asin(√a). Parameters: φ1 (radians), cos φ1, λ1 (radians). The same text on
# PostgreSQL and SQLite (where Django supplies the math functions it may lack),
# but for the clamp of a to 1 (rounding can pass it for antipodes, outside
# asin's domain): LEAST on PostgreSQL, SQLite's two-argument MIN.
_COLUMN = 'RADIANS(CAST("lots_lot"."{}" AS DOUBLE PRECISION))'
_HAVERSINE = {
    is_postgresql: (
        f"FLOOR({2 * EARTH_RADIUS_M} * ASIN(SQRT({'LEAST' if is_postgresql else 'MIN'}(1.0, "
        f"POWER(SIN(({_COLUMN.format('latitude')} - %s) / 2), 2) "
        f"+ %s * COS({_COLUMN.format('latitude')}) "
        f"* POWER(SIN(({_COLUMN.format('longitude')} - %s) / 2), 2)))) + 0.5)"
    )
    for is_postgresql in (False, True)
}


def _bound(value: float, rounding: str) -> Decimal:
    # The columns hold 6 decimals: round outwards so that the box never shrinks.
    return Decimal(value).quantize(Decimal("0.000001"), rounding=rounding)


def lots_near(lots: QuerySet[Lot], lat: float, lng: float, *, radius_m: int) -> QuerySet[Lot]:
    """These lots within `radius_m` metres of (lat, lng), nearest first, with
    `distance_m` (whole metres, great-circle).

    The distance is the haversine formula in SQL (no PostGIS; SQLite gets the
    math functions from Django when it lacks them). It is computed only for the
    lots inside a latitude/longitude box around the circle, which the
    (latitude, longitude) index finds without reading every lot.
    """
    angle = radius_m / EARTH_RADIUS_M  # the radius as an angle at the centre, in radians
    dlat = math.degrees(angle)
    box = Q(
        latitude__gte=_bound(max(lat - dlat, -90.0), ROUND_FLOOR),
        latitude__lte=_bound(min(lat + dlat, 90.0), ROUND_CEILING),
    )
    if abs(lat) + dlat < 90.0:  # the circle contains no pole: bound the longitude too
        dlng = math.degrees(math.asin(min(1.0, math.sin(angle) / math.cos(math.radians(lat)))))
        west, east = lng - dlng, lng + dlng
        if west < -180.0:  # the box crosses the 180th meridian
            box &= Q(longitude__gte=_bound(west + 360.0, ROUND_FLOOR)) | Q(
                longitude__lte=_bound(east, ROUND_CEILING)
            )
        elif east > 180.0:
            box &= Q(longitude__gte=_bound(west, ROUND_FLOOR)) | Q(
                longitude__lte=_bound(east - 360.0, ROUND_CEILING)
            )
        else:
            box &= Q(
                longitude__gte=_bound(west, ROUND_FLOOR),
                longitude__lte=_bound(east, ROUND_CEILING),
            )

    # One constant SQL text with three parameters: built in microseconds, where the
    # same formula as ORM expressions took milliseconds of Python per query.
    lat1 = math.radians(lat)
    distance = RawSQL(  # noqa: S611  (constant text; values are parameters)
        _HAVERSINE[connection.vendor == "postgresql"],
        (lat1, math.cos(lat1), math.radians(lng)),
        output_field=FloatField(),
    )
    return (
        lots.filter(box)
        .annotate(distance_m=distance)
        .filter(distance_m__lte=radius_m)
        .order_by("distance_m", "slug")
    )


@dataclass(frozen=True)
class Schedule:
    """A lot's name, time zone and weekly opening hours (no hours: open 24/7)."""

    lot_name: str
    tz: zoneinfo.ZoneInfo
    hours: tuple[Hours, ...]


_SCHEDULE = """
SELECT l.name, l.timezone, h.weekday, h.opens, h.closes
FROM lots_lot l LEFT JOIN lots_openinghours h ON h.lot_id = l.id
WHERE l.id = %s
"""


def _time(value) -> time:
    return value if isinstance(value, time) else parse_time(value)  # SQLite: text


def lot_schedule(*, lot_pk: int) -> Schedule | None:
    """The lot's name, zone and opening hours (None: no such lot), in one query."""
    # A replica's under reading_replica() (config/db_router.py), else the leader's.
    with read_connection().cursor() as cursor:
        cursor.execute(_SCHEDULE, [lot_pk])
        rows = cursor.fetchall()
    if not rows:
        return None
    name, tz = rows[0][:2]
    hours = tuple(
        (weekday, _time(opens), _time(closes))
        for _, _, weekday, opens, closes in rows
        if weekday is not None
    )
    return Schedule(name, zoneinfo.ZoneInfo(tz), hours)


def opening_hours_of(lot: Lot) -> tuple[Hours, ...]:
    """A lot's hours as rows (uses a prefetch of lot.opening_hours when there is one)."""
    return tuple((h.weekday, h.opens, h.closes) for h in lot.opening_hours.all())


def active_lots(*, lot_id: str) -> QuerySet[Lot]:
    """The active lot with this public id (none for ids no lot can have, such as
    strings with NUL bytes, which PostgreSQL refuses outright)."""
    if "\x00" in lot_id:
        return Lot.objects.none()
    return Lot.objects.filter(slug=lot_id, is_active=True)


def lot_get(*, lot_id: str) -> Lot:
    """An active lot by its public id, with rates and active spot counts per type
    and per feature."""
    counts = {
        f"spots_{vt}": Count("spots", filter=Q(spots__is_active=True, spots__vehicle_type=vt))
        for vt in VehicleType.values
    }
    counts.update(
        {
            f"spots_with_{name}": Count(
                "spots", filter=Q(spots__is_active=True, **{f"spots__{field}": True})
            )
            for name, field in FEATURE_FIELDS.items()
        }
    )
    lot = (
        active_lots(lot_id=lot_id)
        .annotate(**counts)
        .prefetch_related(
            Prefetch("rates", queryset=Rate.objects.order_by("vehicle_type")),
            Prefetch("opening_hours", queryset=OpeningHours.objects.order_by("weekday")),
            Prefetch("rate_rules", queryset=_rules_in_force_or_to_come()),
        )
        .first()
    )
    if lot is None:
        raise NotFound("There is no such lot.", code="lot_not_found")
    return lot


def _rules_in_force_or_to_come() -> QuerySet[RateRule]:
    over = Q(kind=RateRule.Kind.EVENT, ends_at__lte=timezone.now())
    return RateRule.objects.filter(is_active=True).exclude(over)


def spot_counts(lot: Lot) -> dict[str, int]:
    return {vt: getattr(lot, f"spots_{vt}", 0) for vt in VehicleType.values}


def spot_feature_counts(lot: Lot) -> dict[str, int]:
    """Active spots with each feature, of a lot from lot_get."""
    return {name: getattr(lot, f"spots_with_{name}", 0) for name in FEATURE_FIELDS}


def lot_ids_for_staff(user) -> frozenset[int]:
    """Ids of the lots a staff user is a member of (LotStaff).

    Membership alone decides: callers treat superusers, who see every lot, apart.
    Inactive or anonymous users staff nothing.
    """
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    return frozenset(LotStaff.objects.filter(user=user).values_list("lot_id", flat=True))


# --- flex rates (issue #15) ----------------------------------------------------------------


def flex_rules(
    *, lot_pk: int, vehicle_type: str, after: datetime | None = None
) -> tuple[str, tuple[FlexRule, ...]]:
    """(the lot's time zone, its active rate rules for the vehicle type), in one
    query; with `after`, events over by then are left out (they cannot matter to
    a window that starts then, nor to its overstay or extension)."""
    rules = RateRule.objects.filter(lot_id=lot_pk, is_active=True).filter(
        Q(vehicle_type=vehicle_type) | Q(vehicle_type="")
    )
    if after is not None:
        rules = rules.exclude(kind=RateRule.Kind.EVENT, ends_at__lte=after)
    found = list(rules.select_related("lot").only(*_RULE_FIELDS))
    tz = found[0].lot.timezone if found else "UTC"
    return tz, tuple(rule.as_flex() for rule in found)


_RULE_FIELDS = (
    "kind",
    "name",
    "hourly_amount",
    "priority",
    "weekdays",
    "start_time",
    "end_time",
    "starts_at",
    "ends_at",
    "lot__timezone",
)


def lot_tariff(
    *,
    lot_pk: int,
    vehicle_type: str,
    hourly: int,
    daily_max: int,
    has_rules: bool = True,
    after: datetime | None = None,
) -> Tariff:
    """The lot's tariff for the vehicle type as it stands: its rate and, when it
    has any (`has_rules`, from the query that read the rate), its rate rules."""
    if not has_rules:
        return Tariff(hourly, daily_max)
    tz, rules = flex_rules(lot_pk=lot_pk, vehicle_type=vehicle_type, after=after)
    return Tariff(hourly, daily_max, tz, rules)


def flex_rules_of_lots(*, lot_pks: list[int], vehicle_type: str) -> dict[int, tuple[FlexRule, ...]]:
    """The active rate rules for the vehicle type of several lots, in one query
    (a search's results)."""
    found: dict[int, list[FlexRule]] = {}
    if not lot_pks:
        return {}
    rules = RateRule.objects.filter(lot_id__in=lot_pks, is_active=True).filter(
        Q(vehicle_type=vehicle_type) | Q(vehicle_type="")
    )
    for rule in rules:
        found.setdefault(rule.lot_id, []).append(rule.as_flex())
    return {lot_pk: tuple(rules) for lot_pk, rules in found.items()}


@dataclass(frozen=True)
class PricePreview:
    """A window's price at a lot as the rules are saved, and with one rule as
    staff are editing it (unsaved), line by line (the rule form's preview)."""

    currency: str
    saved_price: int
    saved_lines: tuple[PriceLine, ...]
    draft_price: int
    draft_lines: tuple[PriceLine, ...]


def rate_rule_preview(
    *, lot: Lot, vehicle_type: str, start: datetime, end: datetime, draft: RateRule
) -> PricePreview:
    """What [start, end) costs a vehicle type at the lot with its rules as saved,
    and with `draft` (a rule being added or changed, not saved) in place of its
    saved version. NotFound when the lot has no rate for the type."""
    rate = Rate.objects.filter(lot=lot, vehicle_type=vehicle_type).first()
    if rate is None:
        raise NotFound(
            f"{lot.name} has no rate for that vehicle type.", code="vehicle_type_not_offered"
        )
    rules = RateRule.objects.filter(lot=lot, is_active=True).filter(
        Q(vehicle_type=vehicle_type) | Q(vehicle_type="")
    )
    saved = [(rule.pk, rule.as_flex()) for rule in rules]
    edited = [flex for pk, flex in saved if draft.pk is None or pk != draft.pk]
    if draft.is_active and draft.vehicle_type in ("", vehicle_type):
        edited.append(draft.as_flex())
    base = (rate.hourly_amount, rate.daily_max_amount, lot.timezone)
    as_saved = Tariff(*base, tuple(flex for _, flex in saved))
    as_edited = Tariff(*base, tuple(edited))
    return PricePreview(
        currency=lot.currency,
        saved_price=as_saved.window_price(start, end),
        saved_lines=as_saved.price_breakdown(start, end),
        draft_price=as_edited.window_price(start, end),
        draft_lines=as_edited.price_breakdown(start, end),
    )
