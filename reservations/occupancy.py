"""Occupancy of a lot over one local day: who holds each spot, hour by hour.

Two queries whatever the size of the lot (its spots; the reservations that
touch the day), then everything is worked out in Python in O(spots +
reservations), and drawn as a server-side SVG timeline (spots × hours) with the
utilisation of each hour under it.

Words used here:
- a reservation *holds* its spot over [start, occupied_until) while it blocks
  it (DESIGN §4; lapsed unpaid holds do not count);
- a car is *parked* from its arrival to its departure (or now, while it is
  still in), which may run past `end` (overstay);
- a spot is *in use* at a moment when it is held or a car is parked in it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from lots.constants import VehicleType
from lots.models import Lot, Spot
from reservations.allocation import live_blocking_q
from reservations.models import Reservation, Status

HOUR = timedelta(hours=1)
# Bookings last at most BOOKING_MAX_DAYS; a week more covers cars that stay
# well past their end. Bounding `start` keeps the query on the (lot, start)
# index instead of every reservation the lot ever had.
_OVERSTAY_ALLOWANCE = timedelta(days=7)

# Cell states, from the strongest: what a spot was during an hour.
PARKED = "parked"  # a car was in it at some time in the hour
BOOKED = "booked"  # held by a booking, no car
FREE = "free"
OFF = "off"  # out of service (and nothing on it)

_TYPE_ORDER = {vt: n for n, vt in enumerate(VehicleType.values)}


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Bar:
    """A stretch of one spot's row in the chart."""

    kind: str  # "held" (pending payment), "booked", "no_show" or "parked"
    start: datetime
    end: datetime
    code: str
    status: str
    plate: str


@dataclass
class SpotRow:
    spot_id: int
    label: str
    vehicle_type: str
    is_active: bool
    bars: list[Bar] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)  # one state per hour
    in_use_minutes: float = 0.0

    @property
    def counted(self) -> bool:
        """Part of the day's capacity: in service, or used that day anyway."""
        return self.is_active or bool(self.bars)


@dataclass(frozen=True)
class HourStat:
    start: datetime  # UTC
    end: datetime
    label: str  # local wall-clock time, e.g. "09:00"
    booked: int  # spots held by a booking and no car in them during the hour
    parked: int  # spots a car was parked in during the hour
    free: int  # spots neither held nor parked in at any time in the hour
    in_use_minutes: float  # spot-minutes in use in the hour
    capacity_minutes: float  # counted spots × minutes of the hour

    @property
    def utilisation(self) -> float:
        return self.in_use_minutes / self.capacity_minutes if self.capacity_minutes else 0.0

    @property
    def percent(self) -> int:
        return round(self.utilisation * 100)


@dataclass(frozen=True)
class Movement:
    """An arrival or a departure of the day: when it is due and when it happened."""

    code: str
    reservation_id: int
    spot_label: str
    plate: str
    email: str
    status: str
    status_display: str
    due: datetime | None  # the window's start (arrivals) or end (departures)
    actual: datetime | None  # arrived_at / departed_at


@dataclass
class Occupancy:
    lot: Lot
    day: date
    tz: ZoneInfo
    start: datetime  # local midnight, in UTC
    end: datetime  # next local midnight, in UTC (23 or 25 hours later on DST days)
    now: datetime
    rows: list[SpotRow]
    hours: list[HourStat]
    arrivals: list[Movement]
    departures: list[Movement]

    @property
    def capacity(self) -> int:
        return sum(row.counted for row in self.rows)

    @property
    def utilisation(self) -> float:
        """Share of the day's spot-time in use."""
        capacity = sum(hour.capacity_minutes for hour in self.hours)
        return sum(hour.in_use_minutes for hour in self.hours) / capacity if capacity else 0.0

    @property
    def peak(self) -> HourStat | None:
        return max(self.hours, key=lambda hour: hour.in_use_minutes, default=None)

    @property
    def is_today(self) -> bool:
        return self.start <= self.now < self.end


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The day's first and last instant, in UTC: local midnight to local midnight."""
    start = datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
    return start, end


def local_today(lot: Lot, now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(lot.tz).date()


def lot_occupancy(*, lot: Lot, day: date, now: datetime | None = None) -> Occupancy:
    """The lot's occupancy over its local `day` (Lot.timezone). Two queries."""
    now = now or timezone.now()
    tz = lot.tz
    day_start, day_end = day_bounds(day, tz)

    spots = list(
        Spot.objects.filter(lot_id=lot.pk).values_list("pk", "label", "vehicle_type", "is_active")
    )
    spots.sort(key=lambda s: (_TYPE_ORDER.get(s[2], 99), s[1]))
    rows = {
        pk: SpotRow(spot_id=pk, label=label, vehicle_type=vehicle_type, is_active=is_active)
        for pk, label, vehicle_type, is_active in spots
    }

    horizon = timedelta(days=settings.BOOKING_MAX_DAYS) + _OVERSTAY_ALLOWANCE
    reservations = list(
        Reservation.objects.filter(lot_id=lot.pk, start__gte=day_start - horizon, start__lt=day_end)
        .filter(live_blocking_q(now))
        .filter(
            Q(occupied_until__gt=day_start) | Q(departed_at__gt=day_start) | Q(status=Status.PARKED)
        )
        .select_related("user")
        .only(
            "pk",
            "code",
            "spot_id",
            "status",
            "start",
            "end",
            "occupied_until",
            "arrived_at",
            "departed_at",
            "vehicle_plate",
            "user__email",
        )
        .order_by("start", "pk")
    )

    hours = _hour_slots(day_start, day_end)
    # Per spot, the intervals in use (for minutes) and per hour the strongest state.
    in_use: dict[int, list[Interval]] = defaultdict(list)
    parked_hours: dict[int, set[int]] = defaultdict(set)
    booked_hours: dict[int, set[int]] = defaultdict(set)
    arrivals: list[Movement] = []
    departures: list[Movement] = []

    for r in reservations:
        row = rows.get(r.spot_id)
        if row is None:  # a spot of another lot: cannot happen, but never crash
            continue
        held = _clip(r.start, r.occupied_until, day_start, day_end)
        if held:
            row.bars.append(_bar(_held_kind(r.status), held, r))
            in_use[r.spot_id].append(held)
            booked_hours[r.spot_id].update(_hours_touched(held, day_start, len(hours)))
        parked_until = r.departed_at or (now if r.status == Status.PARKED else None)
        if r.arrived_at and parked_until:
            parked = _clip(r.arrived_at, parked_until, day_start, day_end)
            if parked:
                row.bars.append(_bar(PARKED, parked, r))
                in_use[r.spot_id].append(parked)
                parked_hours[r.spot_id].update(_hours_touched(parked, day_start, len(hours)))

        if day_start <= r.start < day_end or (r.arrived_at and day_start <= r.arrived_at < day_end):
            arrivals.append(_movement(r, row, due=r.start, actual=r.arrived_at))
        if day_start <= r.end < day_end or (r.departed_at and day_start <= r.departed_at < day_end):
            departures.append(_movement(r, row, due=r.end, actual=r.departed_at))

    hour_minutes = [(end - start).total_seconds() / 60 for start, end in hours]
    in_use_minutes = [0.0] * len(hours)
    for spot_id, intervals in in_use.items():
        for interval in _merge(intervals):
            for index in _hours_touched(interval, day_start, len(hours)):
                start, end = hours[index]
                overlap = min(end, interval.end) - max(start, interval.start)
                minutes = overlap.total_seconds() / 60
                in_use_minutes[index] += minutes
                rows[spot_id].in_use_minutes += minutes

    ordered_rows = list(rows.values())
    counted = [row for row in ordered_rows if row.counted]
    stats = []
    for index, (start, end) in enumerate(hours):
        parked = sum(1 for row in counted if index in parked_hours[row.spot_id])
        booked = sum(
            1
            for row in counted
            if index in booked_hours[row.spot_id] and index not in parked_hours[row.spot_id]
        )
        stats.append(
            HourStat(
                start=start,
                end=end,
                label=start.astimezone(tz).strftime("%H:%M"),
                booked=booked,
                parked=parked,
                free=len(counted) - booked - parked,
                in_use_minutes=in_use_minutes[index],
                capacity_minutes=hour_minutes[index] * len(counted),
            )
        )
    for row in ordered_rows:
        row.cells = [
            PARKED
            if index in parked_hours[row.spot_id]
            else BOOKED
            if index in booked_hours[row.spot_id]
            else FREE
            if row.is_active
            else OFF
            for index in range(len(hours))
        ]

    arrivals.sort(key=lambda m: (m.due or m.actual, m.code))
    departures.sort(key=lambda m: (m.due or m.actual, m.code))
    return Occupancy(
        lot=lot,
        day=day,
        tz=tz,
        start=day_start,
        end=day_end,
        now=now,
        rows=ordered_rows,
        hours=stats,
        arrivals=arrivals,
        departures=departures,
    )


def _hour_slots(day_start: datetime, day_end: datetime) -> list[tuple[datetime, datetime]]:
    # Stepping in UTC from local midnight gives the day's real hours: 23 when
    # the clocks go forward, 25 when they go back.
    slots = []
    moment = day_start
    while moment < day_end:
        slots.append((moment, min(moment + HOUR, day_end)))
        moment += HOUR
    return slots


def _clip(start: datetime, end: datetime, lo: datetime, hi: datetime) -> Interval | None:
    start, end = max(start, lo), min(end, hi)
    return Interval(start, end) if start < end else None


def _hours_touched(interval: Interval, day_start: datetime, count: int) -> range:
    first = int((interval.start - day_start) / HOUR)
    # Half-open: an interval ending on the hour does not touch the next one.
    last = int((interval.end - day_start - timedelta(microseconds=1)) / HOUR)
    return range(max(first, 0), min(last, count - 1) + 1)


def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for interval in sorted(intervals, key=lambda i: i.start):
        if merged and interval.start <= merged[-1].end:
            if interval.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, interval.end)
        else:
            merged.append(interval)
    return merged


def _held_kind(status: str) -> str:
    if status == Status.PENDING_PAYMENT:
        return "held"
    if status == Status.NO_SHOW:
        return "no_show"
    return BOOKED


def _bar(kind: str, interval: Interval, r: Reservation) -> Bar:
    return Bar(
        kind=kind,
        start=interval.start,
        end=interval.end,
        code=r.code,
        status=r.status,
        plate=r.vehicle_plate,
    )


def _movement(r: Reservation, row: SpotRow, *, due: datetime, actual: datetime | None) -> Movement:
    return Movement(
        code=r.code,
        reservation_id=r.pk,
        spot_label=row.label,
        plate=r.vehicle_plate,
        email=r.user.email,
        status=r.status,
        status_display=Status(r.status).label,
        due=due,
        actual=actual,
    )


# --- the chart ---------------------------------------------------------------------------

_LABEL_WIDTH = 92
_HOUR_WIDTH = 38
_AXIS_HEIGHT = 22
_UTIL_HEIGHT = 90
_LEGEND_HEIGHT = 26
_GAP = 16
_KIND_CLASS = {
    "held": "bar-held",
    BOOKED: "bar-booked",
    "no_show": "bar-noshow",
    PARKED: "bar-parked",
}
_KIND_WORDS = {
    "held": "held, awaiting payment",
    BOOKED: "booked",
    "no_show": "no-show",
    PARKED: "parked",
}


def occupancy_svg(occupancy: Occupancy) -> SafeString:
    """The timeline (a row per spot, a column per hour) and the utilisation of
    each hour, as one inline SVG. Every piece of text is escaped."""
    hours = occupancy.hours
    n_rows = len(occupancy.rows)
    row_height = 16 if n_rows <= 60 else 11
    width = _LABEL_WIDTH + _HOUR_WIDTH * max(len(hours), 1) + 8
    timeline_top = _LEGEND_HEIGHT + _AXIS_HEIGHT
    timeline_height = row_height * n_rows
    util_top = timeline_top + timeline_height + _GAP + _AXIS_HEIGHT
    height = util_top + _UTIL_HEIGHT + _AXIS_HEIGHT
    day_seconds = (occupancy.end - occupancy.start).total_seconds() or 1
    span = _HOUR_WIDTH * len(hours)
    tz = occupancy.tz

    def x_of(moment: datetime) -> float:
        return _LABEL_WIDTH + span * (moment - occupancy.start).total_seconds() / day_seconds

    def hhmm(moment: datetime) -> str:
        return moment.astimezone(tz).strftime("%H:%M")

    out: list[str] = [
        # Its natural size; static/css/admin.css styles it and its classes (the
        # Content-Security-Policy allows no inline <style> or style="").
        f'<svg xmlns="http://www.w3.org/2000/svg" class="occupancy-chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="Occupancy of {escape(occupancy.lot.name)} on {occupancy.day:%Y-%m-%d}">',
        '<defs><pattern id="off" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ddd"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#bbb" stroke-width="3"/></pattern></defs>',
    ]

    # Legend.
    legend_x = _LABEL_WIDTH
    for css, words in (
        ("bar-booked", "booked"),
        ("bar-held", "held, awaiting payment"),
        ("bar-parked", "parked"),
        ("bar-noshow", "no-show"),
        ("row-free", "free"),
        ("row-off", "out of service"),
    ):
        out.append(f'<rect class="{css}" x="{legend_x}" y="6" width="14" height="12"/>')
        out.append(f'<text class="legend" x="{legend_x + 18}" y="16">{words}</text>')
        legend_x += 26 + 6.5 * len(words)

    # Hour axis above the timeline and above the utilisation chart.
    for top in (timeline_top, util_top):
        for index, hour in enumerate(hours):
            x = _LABEL_WIDTH + _HOUR_WIDTH * index
            out.append(f'<text class="axis" x="{x + 2}" y="{top - 6}">{hour.label}</text>')

    # One row per spot: its background, then its bars, then the hour grid.
    for n, row in enumerate(occupancy.rows):
        y = timeline_top + n * row_height
        background = "row-free" if row.is_active else "row-off"
        state = "in service" if row.is_active else "out of service"
        out.append(
            f'<text class="label" x="4" y="{y + row_height - 3}">'
            f"{escape(row.label)}</text>"
            f'<rect class="{background}" x="{_LABEL_WIDTH}" y="{y}" width="{span}" '
            f'height="{row_height - 1}"><title>{escape(row.label)} '
            f"({escape(row.vehicle_type)}, {state})</title></rect>"
        )
        for bar in row.bars:
            x0, x1 = x_of(bar.start), x_of(bar.end)
            inset = 3 if bar.kind == PARKED else 0
            title = (
                f"{bar.code} · {row.label} · {_KIND_WORDS[bar.kind]} "
                f"{hhmm(bar.start)}–{hhmm(bar.end)}" + (f" · {bar.plate}" if bar.plate else "")
            )
            out.append(
                f'<rect class="{_KIND_CLASS[bar.kind]}" x="{x0:.1f}" y="{y + inset}" '
                f'width="{max(x1 - x0, 1):.1f}" height="{row_height - 1 - 2 * inset}" '
                f'data-code="{escape(bar.code)}"><title>{escape(title)}</title></rect>'
            )
    for index in range(len(hours) + 1):
        x = _LABEL_WIDTH + _HOUR_WIDTH * index
        out.append(
            f'<line class="grid" x1="{x}" y1="{timeline_top}" x2="{x}" '
            f'y2="{timeline_top + timeline_height}"/>'
        )

    # Utilisation per hour.
    out.append(
        f'<text class="label" x="4" y="{util_top + 12}">Utilisation</text>'
        f'<text class="axis" x="4" y="{util_top + _UTIL_HEIGHT}">per hour</text>'
    )
    for index, hour in enumerate(hours):
        x = _LABEL_WIDTH + _HOUR_WIDTH * index
        bar_height = _UTIL_HEIGHT * hour.utilisation
        out.append(
            f'<rect class="util-bg" x="{x + 2}" y="{util_top}" width="{_HOUR_WIDTH - 4}" '
            f'height="{_UTIL_HEIGHT}"/>'
            f'<rect class="util" x="{x + 2}" y="{util_top + _UTIL_HEIGHT - bar_height:.1f}" '
            f'width="{_HOUR_WIDTH - 4}" height="{bar_height:.1f}"><title>{hour.label}: '
            f"{hour.percent}% in use · {hour.parked} parked · {hour.booked} booked · "
            f"{hour.free} free</title></rect>"
            f'<text class="axis" x="{x + 4}" y="{util_top + _UTIL_HEIGHT + 13}">'
            f"{hour.percent}%</text>"
        )

    if occupancy.is_today:
        x = x_of(occupancy.now)
        out.append(
            f'<line class="now" x1="{x:.1f}" y1="{timeline_top - 4}" x2="{x:.1f}" '
            f'y2="{timeline_top + timeline_height}"><title>now, {hhmm(occupancy.now)}</title>'
            "</line>"
        )
    out.append("</svg>")
    return mark_safe("".join(out))  # noqa: S308  (every value above is escaped or a number)
