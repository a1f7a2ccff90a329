"""Prices of parking windows, as pure functions (DESIGN §4, Money).

A window costs the hourly rate for each started hour, and each 24-hour block
(counted from the start) costs at most the daily maximum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)


def started_hours(start: datetime, end: datetime) -> int:
    if end <= start:
        return 0
    whole, rest = divmod(end - start, HOUR)
    return whole + (1 if rest else 0)


def price_for_hours(hours: int, *, hourly: int, daily_max: int) -> int:
    days, rest = divmod(hours, 24)
    return days * min(24 * hourly, daily_max) + min(rest * hourly, daily_max)


def window_price(start: datetime, end: datetime, *, hourly: int, daily_max: int) -> int:
    """Price, in minor units, of parking over [start, end)."""
    return price_for_hours(started_hours(start, end), hourly=hourly, daily_max=daily_max)


def no_show_charge(start: datetime, end: datetime, *, hourly: int, daily_max: int) -> int:
    """What a no-show pays: the first 24 hours of the window, or all of a shorter one."""
    return window_price(start, min(end, start + DAY), hourly=hourly, daily_max=daily_max)


HOURLY = "hourly"  # started hours at the hourly rate
DAILY_MAX = "daily_max"  # 24-hour blocks (or the last, shorter one) capped at the daily maximum


@dataclass(frozen=True)
class PriceLine:
    """One line of a price: `quantity` units of `unit_amount`, covering `hours` started hours.

    hourly:    quantity = hours, each at the hourly rate
    daily_max: quantity = blocks of up to 24 h, each capped at the daily maximum
    """

    kind: str
    hours: int
    quantity: int
    unit_amount: int

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_amount


def price_breakdown(
    start: datetime, end: datetime, *, hourly: int, daily_max: int
) -> tuple[PriceLine, ...]:
    """How window_price adds up, line by line: hours × rate and capped days.

    The lines' amounts always sum to window_price (a hypothesis property checks it).
    """
    days, rest = divmod(started_hours(start, end), 24)
    blocks: list[tuple[str, int, int, int]] = []  # (kind, hours, quantity, unit)
    if days:
        if daily_max < 24 * hourly:
            blocks.append((DAILY_MAX, 24 * days, days, daily_max))
        else:
            blocks.append((HOURLY, 24 * days, 24 * days, hourly))
    if rest:
        if daily_max < rest * hourly:
            blocks.append((DAILY_MAX, rest, 1, daily_max))
        else:
            blocks.append((HOURLY, rest, rest, hourly))
    lines: list[PriceLine] = []
    for kind, hours, quantity, unit in blocks:
        if lines and lines[-1].kind == kind and lines[-1].unit_amount == unit:
            last = lines.pop()  # one line for 2 capped days and a capped rest, say
            hours, quantity = last.hours + hours, last.quantity + quantity
        lines.append(PriceLine(kind=kind, hours=hours, quantity=quantity, unit_amount=unit))
    return tuple(lines)
