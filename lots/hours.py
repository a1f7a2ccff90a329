"""Opening hours: pure rules on a lot's weekly hours, in its own local time.

Hours are (weekday, opens, closes) rows, Monday = 0, in the lot's wall-clock
time; no rows at all means open 24/7, and once there are rows a day without one
is closed. Closing at 00:00 means midnight at the end of that day. Wall-clock
times become instants with the lot's IANA zone (zoneinfo), so a lot that opens
at 07:00 opens at 07:00 on both sides of a daylight-saving change.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils.translation import gettext, gettext_lazy

Hours = tuple[int, time, time]  # weekday (Monday 0), opens, closes (00:00: midnight)

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# For people, in the active language (lun.–ven. in French).
_SHORT = (
    gettext_lazy("Mon"), gettext_lazy("Tue"), gettext_lazy("Wed"), gettext_lazy("Thu"),
    gettext_lazy("Fri"), gettext_lazy("Sat"), gettext_lazy("Sun"),
)  # fmt: skip
MIDNIGHT = time(0)


def _at(day: date, moment: time, tz: ZoneInfo) -> datetime:
    # fold=0: a time that happens twice (clocks go back) is its first occurrence,
    # one that never happens (clocks go forward) is read with the offset before.
    return datetime.combine(day, moment, tzinfo=tz).astimezone(UTC)


def open_periods(
    hours: Iterable[Hours], tz: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The lot's open periods (UTC, merged where one runs into the next) that
    touch [start, end). Without hours: one period covering the whole window."""
    by_day = {weekday: (opens, closes) for weekday, opens, closes in hours}
    if not by_day:
        return [(start, end)]
    first = start.astimezone(tz).date() - timedelta(days=1)  # a period from the night before
    last = end.astimezone(tz).date()
    periods: list[tuple[datetime, datetime]] = []
    day = first
    while day <= last:
        if day.weekday() in by_day:
            opens, closes = by_day[day.weekday()]
            close_day = day + timedelta(days=1) if closes == MIDNIGHT else day
            period = (_at(day, opens, tz), _at(close_day, closes, tz))
            if periods and period[0] <= periods[-1][1]:
                periods[-1] = (periods[-1][0], max(periods[-1][1], period[1]))
            else:
                periods.append(period)
        day += timedelta(days=1)
    return [(a, b) for a, b in periods if a < end and b > start]


def first_closed_moment(
    hours: Iterable[Hours], tz: ZoneInfo, start: datetime, end: datetime
) -> datetime | None:
    """The first moment of [start, end) at which the lot is closed, or None when
    it is open throughout."""
    for opens, closes in open_periods(hours, tz, start, end):
        if opens <= start:
            return None if closes >= end else closes
    return start


def weekly_summary(hours: Iterable[Hours]) -> list[tuple[str, str]]:
    """Hours for people, days with the same hours grouped: [("Mon–Fri",
    "07:00–22:00"), ("Sat", "08:00–20:00"), ("Sun", "Closed")]; [] for 24/7."""
    by_day = {weekday: (opens, closes) for weekday, opens, closes in hours}
    if not by_day:
        return []

    def text(day: int) -> str:
        if day not in by_day:
            return gettext("Closed")
        opens, closes = by_day[day]
        if opens == MIDNIGHT and closes == MIDNIGHT:
            return gettext("Open all day")
        return f"{opens:%H:%M}–{'24:00' if closes == MIDNIGHT else f'{closes:%H:%M}'}"

    groups: list[tuple[int, int, str]] = []
    for day in range(7):
        if groups and groups[-1][2] == text(day):
            groups[-1] = (groups[-1][0], day, groups[-1][2])
        else:
            groups.append((day, day, text(day)))
    return [
        (str(_SHORT[a]) if a == b else f"{_SHORT[a]}–{_SHORT[b]}", label) for a, b, label in groups
    ]
