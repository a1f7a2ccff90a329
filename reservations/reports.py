"""The numbers of a lot operator's business over a period: reads only.

For a set of lots and a period of local days (each lot's own time zone):
revenue (captured minus refunded, by kind: parking, no-show, overstay),
bookings and what became of them, no-show and overstay rates, average stay,
lead time, and occupancy by weekday and hour of day.

Five queries whatever the period and the number of lots (each groups by lot),
so a year costs what a week does in queries; each reads only the reservations
of the period through the (lot, start) index:

1. active spots per lot (the capacity);
2. bookings: one conditional aggregation per lot;
3. revenue: the period's reservations joined to their payments (and their
   extensions' payments) by reference, summed by lot, status and kind;
4. and 5. occupancy: the occupying reservations counted by the UTC hour in which
   they start (4) and in which they stop holding their spot (5), with the sum of
   the minutes past the hour. A running count over the hours then gives the
   exact spot-minutes in use in every hour (a car that is in at the start of an
   hour is in for all of it unless it stops in it), without expanding any
   reservation into hours in SQL (no generate_series: the same on SQLite and
   PostgreSQL). Python walks the period's hours once (8,760 for a year), not
   the reservations.

Approximations, said once: capacity is the lot's spots in service now (a spot
taken out of service in the middle of the period counts for all of it); a
lot whose time zone is not a whole number of hours from UTC has each UTC hour
counted in the local hour it starts in; times are counted to the minute.
"""

from __future__ import annotations

import calendar
import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import ExtractMinute, TruncHour
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from lots.features import FEATURE_FIELDS
from lots.models import Lot, Spot
from payments.models import Payment
from reservations.models import (
    EXTENSION_REFERENCE_SEPARATOR,
    PAYMENT_REFERENCE_PREFIX,
    Reservation,
    ReservationExtension,
    Status,
)

HOUR = timedelta(hours=1)
# A reservation that holds its spot in the period started at most this long
# before it (bookings last at most BOOKING_MAX_DAYS; a week more for cars that
# stay on): bounding `start` keeps every query on the (lot, start) index.
_OVERSTAY_ALLOWANCE = timedelta(days=7)
# The longest custom period asked for (a few years of history is plenty).
MAX_PERIOD_DAYS = 3 * 366

# Bookings: what drivers paid for (an unpaid hold that lapsed is not one).
BOOKED = (Status.CONFIRMED, Status.PARKED, Status.COMPLETED, Status.NO_SHOW, Status.CANCELLED)
# Reservations that hold their spot over [start, occupied_until) in a report:
# paid ones (a hold awaiting payment is not business yet).
OCCUPYING = (Status.CONFIRMED, Status.PARKED, Status.COMPLETED, Status.NO_SHOW)

# Revenue kinds, in the order shown.
PARKING = "parking"
NO_SHOW = "no_show"
OVERSTAY = "overstay"
REVENUE_KINDS = (PARKING, NO_SHOW, OVERSTAY)
REVENUE_LABELS = {PARKING: "Parking", NO_SHOW: "No-show charges", OVERSTAY: "Overstay"}
WEEKDAYS = tuple(calendar.day_abbr)  # Mon … Sun


# --- periods --------------------------------------------------------------------------------


PRESETS = {"last7": "Last 7 days", "last30": "Last 30 days", "month": "This month"}


@dataclass(frozen=True)
class Period:
    """Local days `first` to `last`, both included, read in each lot's time zone."""

    key: str  # a preset's key, or "custom"
    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def label(self) -> str:
        name = PRESETS.get(self.key, "From")
        return f"{name}: {self.first:%d %b %Y} to {self.last:%d %b %Y}"

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """The period's first and last instant in `tz`, in UTC: [start, end)."""
        start = datetime.combine(self.first, time.min, tzinfo=tz).astimezone(UTC)
        end = datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
        return start, end

    def query(self) -> str:
        if self.key == "custom":
            return f"period=custom&from={self.first:%Y-%m-%d}&to={self.last:%Y-%m-%d}"
        return f"period={self.key}"


class BadPeriod(ValueError):
    """A period that cannot be read; the view says so and shows the default."""


def period_preset(key: str, today: date) -> Period:
    if key == "last30":
        return Period("last30", today - timedelta(days=29), today)
    if key == "month":
        return Period("month", today.replace(day=1), today)
    return Period("last7", today - timedelta(days=6), today)


def period_parse(params, today: date) -> Period:
    """The period a report's query string asks for (`period`, and `from`/`to`
    for a custom one); BadPeriod if it cannot be read."""
    key = params.get("period") or "last7"
    if key in PRESETS:
        return period_preset(key, today)
    if key != "custom":
        raise BadPeriod("Unknown period.")
    try:
        first = date.fromisoformat(params.get("from") or "")
        last = date.fromisoformat(params.get("to") or "")
    except ValueError as exc:
        raise BadPeriod("Dates are YYYY-MM-DD.") from exc
    if last < first:
        raise BadPeriod("The period ends before it starts.")
    if (last - first).days + 1 > MAX_PERIOD_DAYS or first.year < 2000 or last.year > 2200:
        raise BadPeriod(f"A period is at most {MAX_PERIOD_DAYS} days.")
    return Period("custom", first, last)


# --- the report -----------------------------------------------------------------------------


@dataclass
class Revenue:
    captured: int = 0
    refunded: int = 0

    @property
    def net(self) -> int:
        return self.captured - self.refunded


@dataclass
class FeatureFigures:
    """The figures of a lot's spots that have one feature (EV charging...)."""

    spots: int = 0
    bookings: int = 0
    revenue_net: int = 0
    used_minutes: float = 0.0  # spot-minutes in use over the period
    available_minutes: float = 0.0  # the spots' minutes in the period

    @property
    def occupancy(self) -> float | None:
        return self.used_minutes / self.available_minutes if self.available_minutes else None


def _no_features() -> dict[str, FeatureFigures]:
    return {name: FeatureFigures() for name in FEATURE_FIELDS}


@dataclass
class LotReport:
    """One lot's figures (or, with `lot` None, several lots' figures summed)."""

    lot: Lot | None
    currency: str
    start: datetime | None = None
    end: datetime | None = None
    spots: int = 0
    revenue: dict[str, Revenue] = field(
        default_factory=lambda: {kind: Revenue() for kind in REVENUE_KINDS}
    )
    bookings: int = 0
    cancelled: int = 0
    completed: int = 0
    parked: int = 0
    upcoming: int = 0  # confirmed, not in yet
    no_shows: int = 0
    overstays: int = 0
    stay_seconds: float = 0.0  # summed over `completed`, for the average
    stays: int = 0
    lead_seconds: float = 0.0  # summed over `bookings`
    # Occupancy: spot-minutes in use and available, per [weekday][hour] (local).
    used: list[list[float]] = field(default_factory=lambda: [[0.0] * 24 for _ in range(7)])
    available: list[list[float]] = field(default_factory=lambda: [[0.0] * 24 for _ in range(7)])
    # By spot feature (lots/features.py): the same figures for the spots with it.
    features: dict[str, FeatureFigures] = field(default_factory=_no_features)

    @property
    def revenue_net(self) -> int:
        return sum(r.net for r in self.revenue.values())

    @property
    def captured(self) -> int:
        return sum(r.captured for r in self.revenue.values())

    @property
    def refunded(self) -> int:
        return sum(r.refunded for r in self.revenue.values())

    @property
    def arrived(self) -> int:
        return self.completed + self.parked

    @property
    def no_show_rate(self) -> float | None:
        """No-shows among the bookings whose driver was due: arrived or not."""
        due = self.arrived + self.no_shows
        return self.no_shows / due if due else None

    @property
    def overstay_rate(self) -> float | None:
        """Cars that stayed past their end among those that came."""
        return self.overstays / self.arrived if self.arrived else None

    @property
    def average_stay(self) -> timedelta | None:
        return timedelta(seconds=self.stay_seconds / self.stays) if self.stays else None

    @property
    def lead_time(self) -> timedelta | None:
        """How long before its start a booking is made, on average."""
        return timedelta(seconds=self.lead_seconds / self.bookings) if self.bookings else None

    def occupancy(self, weekday: int, hour: int) -> float | None:
        available = self.available[weekday][hour]
        return self.used[weekday][hour] / available if available else None

    @property
    def occupancy_overall(self) -> float | None:
        available = sum(map(sum, self.available))
        return sum(map(sum, self.used)) / available if available else None

    def add(self, other: LotReport) -> None:
        """Sum another lot's figures into these (same currency)."""
        self.spots += other.spots
        for kind in REVENUE_KINDS:
            self.revenue[kind].captured += other.revenue[kind].captured
            self.revenue[kind].refunded += other.revenue[kind].refunded
        for name in (
            "bookings",
            "cancelled",
            "completed",
            "parked",
            "upcoming",
            "no_shows",
            "overstays",
            "stay_seconds",
            "stays",
            "lead_seconds",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for day in range(7):
            for hour in range(24):
                self.used[day][hour] += other.used[day][hour]
                self.available[day][hour] += other.available[day][hour]
        for name, theirs in other.features.items():
            ours = self.features[name]
            ours.spots += theirs.spots
            ours.bookings += theirs.bookings
            ours.revenue_net += theirs.revenue_net
            ours.used_minutes += theirs.used_minutes
            ours.available_minutes += theirs.available_minutes


@dataclass
class Report:
    period: Period
    lots: list[LotReport]
    now: datetime

    @property
    def totals(self) -> list[LotReport]:
        """The lots' figures summed, one line per currency (money is never
        added across currencies)."""
        by_currency: dict[str, LotReport] = {}
        for each in self.lots:
            total = by_currency.setdefault(
                each.currency, LotReport(lot=None, currency=each.currency)
            )
            total.add(each)
        return [by_currency[c] for c in sorted(by_currency)]


def lots_report(*, lots: list[Lot], period: Period, now: datetime | None = None) -> Report:
    """The lots' figures over the period (each lot's local days). Five queries
    whatever the period and however many lots."""
    now = now or timezone.now()
    reports = {
        lot.pk: LotReport(lot=lot, currency=lot.currency, start=s, end=e)
        for lot in lots
        for s, e in [period.bounds(lot.tz)]
    }
    if not reports:
        return Report(period=period, lots=[], now=now)
    # Lots of one time zone share the period's bounds: one condition each.
    by_zone: dict[str, list[int]] = defaultdict(list)
    for lot in lots:
        by_zone[lot.timezone].append(lot.pk)
    in_period = Q(pk__in=[])
    horizon = timedelta(days=settings.BOOKING_MAX_DAYS) + _OVERSTAY_ALLOWANCE
    holding = Q(pk__in=[])
    for zone, lot_ids in by_zone.items():
        start, end = period.bounds(ZoneInfo(zone))
        in_period |= Q(lot_id__in=lot_ids, start__gte=start, start__lt=end)
        holding |= Q(
            lot_id__in=lot_ids, start__gte=start - horizon, start__lt=end, occupied_until__gt=start
        )

    _count_spots(reports)
    _count_bookings(reports, in_period, now)
    _sum_revenue(reports, in_period)
    _measure_occupancy(reports, holding)
    ordered = sorted(reports.values(), key=lambda r: (r.lot.name, r.lot.pk))
    return Report(period=period, lots=ordered, now=now)


def _count_spots(reports: dict[int, LotReport]) -> None:
    rows = (
        Spot.objects.filter(lot_id__in=reports, is_active=True)
        .order_by()
        .values("lot_id")
        .annotate(
            n=Count("pk"),
            **{
                f"with_{name}": Count("pk", filter=Q(**{column: True}))
                for name, column in FEATURE_FIELDS.items()
            },
        )
    )
    for row in rows:
        report = reports[row["lot_id"]]
        report.spots = row["n"]
        minutes = (report.end - report.start).total_seconds() / 60
        for name, figures in report.features.items():
            figures.spots = row[f"with_{name}"]
            figures.available_minutes = figures.spots * minutes


def _count_bookings(reports: dict[int, LotReport], in_period: Q, now: datetime) -> None:
    arrived = Q(status__in=(Status.PARKED, Status.COMPLETED))
    overstayed = Q(status=Status.COMPLETED, departed_at__gt=F("end")) | Q(
        status=Status.PARKED, end__lt=now
    )
    stay = ExpressionWrapper(F("departed_at") - F("arrived_at"), output_field=DurationField())
    lead = ExpressionWrapper(F("start") - F("created_at"), output_field=DurationField())
    rows = (
        Reservation.objects.filter(in_period, status__in=BOOKED)
        .order_by()
        .values("lot_id")
        .annotate(
            bookings=Count("pk"),
            cancelled=Count("pk", filter=Q(status=Status.CANCELLED)),
            completed=Count("pk", filter=Q(status=Status.COMPLETED)),
            parked=Count("pk", filter=Q(status=Status.PARKED)),
            upcoming=Count("pk", filter=Q(status=Status.CONFIRMED)),
            no_shows=Count("pk", filter=Q(status=Status.NO_SHOW)),
            overstays=Count("pk", filter=arrived & overstayed),
            stays=Count("pk", filter=Q(status=Status.COMPLETED, arrived_at__isnull=False)),
            stay=Avg(stay, filter=Q(status=Status.COMPLETED, arrived_at__isnull=False)),
            lead=Avg(lead),
            **{
                f"with_{name}": Count("pk", filter=Q(**{f"spot__{column}": True}))
                for name, column in FEATURE_FIELDS.items()
            },
        )
    )
    for row in rows:
        report = reports[row["lot_id"]]
        for name in ("bookings", "cancelled", "completed", "parked", "upcoming", "no_shows"):
            setattr(report, name, row[name])
        report.overstays = row["overstays"]
        report.stays = row["stays"]
        report.stay_seconds = _seconds(row["stay"]) * row["stays"]
        report.lead_seconds = max(_seconds(row["lead"]), 0.0) * row["bookings"]
        for name, figures in report.features.items():
            figures.bookings = row[f"with_{name}"]


def _seconds(value) -> float:
    """An average duration as the database gives it back (a timedelta, or on
    SQLite a number of microseconds)."""
    if value is None:
        return 0.0
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) / 1e6


def _sum_revenue(reports: dict[int, LotReport], in_period: Q) -> None:
    # Payments know a reservation only by reference ("reservation:<code>", and
    # "reservation:<code>/extension-<n>" for the time bought later): the period's
    # reservations are joined to their payments on that reference, which the
    # unique (reference, kind) index answers. One statement (UNION ALL).
    # With the features of each booking's spot, grouped by too: at most 8 rows
    # more per lot and status, for the breakdown by feature.
    flags = {f"f_{name}": F(f"spot__{column}") for name, column in FEATURE_FIELDS.items()}
    period_reservations = Reservation.objects.filter(in_period).values(
        "pk", "lot_id", "status", "code", **flags
    )
    inner, params = period_reservations.query.sql_with_params()
    payment = Payment._meta.db_table
    extension = ReservationExtension._meta.db_table
    qn = connection.ops.quote_name
    # Constants of ours, not input: safe to write into the statement.
    prefix = PAYMENT_REFERENCE_PREFIX.replace("'", "")
    separator = EXTENSION_REFERENCE_SEPARATOR.replace("'", "")
    flag_columns = "".join(f", r.{qn(name)}" for name in flags)
    columns = (
        f"r.{qn('lot_id')}, r.{qn('status')}, p.{qn('kind')}, "
        f"SUM(p.{qn('amount_captured')}), SUM(p.{qn('amount_refunded')}){flag_columns}"
    )
    group = f"GROUP BY r.{qn('lot_id')}, r.{qn('status')}, p.{qn('kind')}{flag_columns}"
    sql = (
        f"SELECT {columns} FROM ({inner}) r "  # noqa: S608  (identifiers and our constants)
        f"JOIN {qn(payment)} p ON p.{qn('reference')} = '{prefix}' || r.{qn('code')} {group} "
        f"UNION ALL "
        f"SELECT {columns} FROM ({inner}) r "
        f"JOIN {qn(extension)} e ON e.{qn('reservation_id')} = r.{qn('pk')} "
        f"JOIN {qn(payment)} p ON p.{qn('reference')} = "
        f"'{prefix}' || r.{qn('code')} || '{separator}' || CAST(e.{qn('number')} AS TEXT) {group}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, (*params, *params))
        rows = cursor.fetchall()
    for lot_id, status, kind, captured, refunded, *has in rows:
        if kind == Payment.Kind.OVERSTAY:
            bucket = OVERSTAY
        elif status == Status.NO_SHOW:
            bucket = NO_SHOW
        else:
            bucket = PARKING
        revenue = reports[lot_id].revenue[bucket]
        revenue.captured += int(captured or 0)
        revenue.refunded += int(refunded or 0)
        for name, with_it in zip(FEATURE_FIELDS, has, strict=True):
            if with_it:
                reports[lot_id].features[name].revenue_net += int(captured or 0) - int(
                    refunded or 0
                )


def _measure_occupancy(reports: dict[int, LotReport], holding: Q) -> None:
    occupying = Reservation.objects.filter(holding, status__in=OCCUPYING).order_by()
    # Per lot and UTC hour: how many start holding their spot in it, and the
    # minutes past the hour at which they do; the same for when they stop.
    starts: dict[int, dict[datetime, tuple[int, int]]] = defaultdict(dict)
    stops: dict[int, dict[datetime, tuple[int, int]]] = defaultdict(dict)
    # Also by the features of the spot (grouped by them: at most 8 rows an hour):
    # per lot and feature, the minutes from a fixed origin at which bookings start
    # and stop holding their spot, clipped to the period; stops minus starts is
    # the spot-minutes in use on spots with the feature.
    clipped: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    flags = [f"spot__{column}" for column in FEATURE_FIELDS.values()]
    for name, target, sign in (("start", starts, -1), ("occupied_until", stops, 1)):
        rows = (
            occupying.annotate(hour=TruncHour(name, tzinfo=UTC))
            .values("lot_id", "hour", *flags)
            .annotate(n=Count("pk"), minutes=Sum(ExtractMinute(name, tzinfo=UTC)))
            .values_list("lot_id", "hour", "n", "minutes", *flags)
        )
        for lot_id, hour, n, minutes, *has in rows:
            hour = _aware(hour)
            n_before, m_before = target[lot_id].get(hour, (0, 0))
            target[lot_id][hour] = (n_before + n, m_before + int(minutes or 0))
            if not any(has):
                continue
            report = reports[lot_id]
            if hour < _hour_floor(report.start):
                at = n * _minutes(report.start)
            elif hour >= report.end:
                at = n * _minutes(report.end)
            else:
                at = n * _minutes(hour) + int(minutes or 0)
            for feature, with_it in zip(FEATURE_FIELDS, has, strict=True):
                if with_it:
                    clipped[lot_id][feature] += sign * at
    for lot_id, by_feature in clipped.items():
        for feature, used in by_feature.items():
            reports[lot_id].features[feature].used_minutes = used

    for lot_id, report in reports.items():
        tz = report.lot.tz
        first = _hour_floor(report.start)
        if starts[lot_id]:
            first = min(first, min(starts[lot_id]))
        moment = first
        in_use = 0  # spots held at `moment`
        while moment < report.end:
            n_start, m_start = starts[lot_id].get(moment, (0, 0))
            n_stop, m_stop = stops[lot_id].get(moment, (0, 0))
            # Spot-minutes in use in this hour: those in at its start stay all
            # hour; one that starts at :m adds 60 - m; one that stops at :m
            # takes off 60 - m.
            used = in_use * 60 + (n_start * 60 - m_start) - (n_stop * 60 - m_stop)
            in_use += n_start - n_stop
            if moment >= report.start:
                local = moment.astimezone(tz)
                report.used[local.weekday()][local.hour] += used
                report.available[local.weekday()][local.hour] += report.spots * 60
            moment += HOUR


_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


def _minutes(moment: datetime) -> float:
    return (moment - _ORIGIN).total_seconds() / 60


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- CSV ------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "lot",
    "name",
    "currency",
    "first_day",
    "last_day",
    "revenue_parking",
    "revenue_no_show",
    "revenue_overstay",
    "revenue_net",
    "captured",
    "refunded",
    "bookings",
    "completed",
    "parked",
    "upcoming",
    "no_shows",
    "cancelled",
    "overstays",
    "no_show_rate_percent",
    "overstay_rate_percent",
    "average_stay_minutes",
    "lead_time_hours",
    "spots",
    "occupancy_percent",
)


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}"


def _cell(text: str) -> str:
    """Text a spreadsheet would not run as a formula (a lot's name is typed by staff)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_row(report: LotReport, period: Period) -> list:
    stay, lead = report.average_stay, report.lead_time
    return [
        report.lot.slug if report.lot else "TOTAL",
        _cell(report.lot.name) if report.lot else f"All lots ({report.currency.upper()})",
        report.currency,
        period.first.isoformat(),
        period.last.isoformat(),
        *(report.revenue[kind].net for kind in REVENUE_KINDS),
        report.revenue_net,
        report.captured,
        report.refunded,
        report.bookings,
        report.completed,
        report.parked,
        report.upcoming,
        report.no_shows,
        report.cancelled,
        report.overstays,
        _percent(report.no_show_rate),
        _percent(report.overstay_rate),
        "" if stay is None else round(stay.total_seconds() / 60),
        "" if lead is None else f"{lead.total_seconds() / 3600:.1f}",
        report.spots,
        _percent(report.occupancy_overall),
    ]


def report_csv(report: Report, *, with_totals: bool) -> str:
    """The same numbers as the page: a row per lot (amounts in minor units),
    the totals per currency, then per lot and spot feature, then occupancy per
    lot, weekday and hour."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for each in report.lots:
        writer.writerow(_csv_row(each, report.period))
    if with_totals:
        for total in report.totals:
            writer.writerow(_csv_row(total, report.period))
    writer.writerow([])
    writer.writerow(
        ["lot", "feature", "spots", "bookings", "revenue_net", "occupancy_percent", "currency"]
    )
    for each in report.lots:
        for name, figures in each.features.items():
            writer.writerow(
                [
                    each.lot.slug,
                    name,
                    figures.spots,
                    figures.bookings,
                    figures.revenue_net,
                    _percent(figures.occupancy),
                    each.currency,
                ]
            )
    writer.writerow([])
    writer.writerow(["lot", "weekday", "hour", "occupancy_percent"])
    for each in report.lots:
        for day in range(7):
            for hour in range(24):
                writer.writerow(
                    [
                        each.lot.slug,
                        WEEKDAYS[day],
                        f"{hour:02}:00",
                        _percent(each.occupancy(day, hour)),
                    ]
                )
    return out.getvalue()


# --- charts (server-side SVG, styled by static/css/admin.css) --------------------------------

_CELL_W, _CELL_H, _LEFT, _TOP = 26, 20, 44, 22


def occupancy_heatmap_svg(report: LotReport, *, title: str) -> SafeString:
    """Weekday × hour of day, each cell shaded by its share of spot-time in use,
    on a scale from 0 to the busiest cell (so that a quiet lot's pattern shows
    too); every cell's title and the legend give the real percentages."""
    width = _LEFT + 24 * _CELL_W + 8
    height = _TOP + 7 * _CELL_H + 34
    shares = [[report.occupancy(day, hour) for hour in range(24)] for day in range(7)]
    busiest = max((s for row in shares for s in row if s is not None), default=0.0) or 1.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="report-chart heatmap" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="{escape(title)}">'
    ]
    for hour in range(0, 24, 2):
        out.append(
            f'<text class="axis" x="{_LEFT + hour * _CELL_W + 2}" y="{_TOP - 6}">{hour:02}h</text>'
        )
    for day in range(7):
        y = _TOP + day * _CELL_H
        out.append(f'<text class="label" x="4" y="{y + 14}">{WEEKDAYS[day]}</text>')
        for hour in range(24):
            share = shares[day][hour]
            level = "none" if share is None else str(min(int(share / busiest * 10), 9))
            words = "no spot-time" if share is None else f"{share * 100:.1f}% in use"
            out.append(
                f'<rect class="heat-{level}" x="{_LEFT + hour * _CELL_W}" y="{y}" '
                f'width="{_CELL_W - 2}" height="{_CELL_H - 2}">'
                f"<title>{WEEKDAYS[day]} {hour:02}:00: {words}</title></rect>"
            )
    legend_y = _TOP + 7 * _CELL_H + 10
    out.append(f'<text class="axis" x="4" y="{legend_y + 11}">In use</text>')
    for level in range(10):
        x = _LEFT + level * 40
        out.append(
            f'<rect class="heat-{level}" x="{x}" y="{legend_y}" width="38" height="12"/>'
            f'<text class="axis" x="{x + 2}" y="{legend_y + 23}">'
            f"{busiest * level * 10:.{0 if busiest >= 0.2 else 1}f}%</text>"
        )
    out.append(
        f'<text class="axis" x="{_LEFT + 10 * 40 + 4}" y="{legend_y + 11}">'
        f"busiest hour: {busiest * 100:.0f}%</text>"
    )
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308  (every value above is escaped or a number)


def revenue_bars_svg(report: LotReport, *, money) -> SafeString:
    """Net revenue by kind as horizontal bars; `money` formats an amount."""
    width, bar_left, bar_width, row = 560, 130, 300, 26
    height = row * len(REVENUE_KINDS) + 10
    largest = max((report.revenue[k].net for k in REVENUE_KINDS), default=0) or 1
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="report-chart revenue" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="Revenue by kind">'
    ]
    for n, kind in enumerate(REVENUE_KINDS):
        y = 4 + n * row
        net = report.revenue[kind].net
        length = max(bar_width * max(net, 0) / largest, 1)
        words = escape(money(net, report.currency))
        out.append(
            f'<text class="label" x="4" y="{y + 15}">{REVENUE_LABELS[kind]}</text>'
            f'<rect class="bar-{kind.replace("_", "")}" x="{bar_left}" y="{y}" '
            f'width="{length:.1f}" height="{row - 8}"><title>{words}</title></rect>'
            f'<text class="label" x="{bar_left + length + 6:.1f}" y="{y + 14}">{words}</text>'
        )
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308  (every value above is escaped or a number)
