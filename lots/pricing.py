"""Prices of parking windows, as pure functions (DESIGN §4, Money).

A window costs the hourly rate for each started hour, and each 24-hour block
(counted from the start) costs at most the daily maximum.
"""

from __future__ import annotations

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
