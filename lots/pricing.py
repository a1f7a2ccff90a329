"""Prices of parking windows, as pure functions (DESIGN §4, Money).

A window costs the hourly rate for each started hour, and each 24-hour block
(counted from the start) costs at most the daily maximum. With flex rates
(Tariff, below) the hourly amount of each started hour is the one in force at
that hour's start: an event rate, else a weekly rule, else the base rate.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

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
    label: str = ""  # the rate rule's name (flex rates), "base rate" beside them, else ""

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


# --- flex rates (issue #15): rules by weekday and time of day, and event rates ----------

WEEKLY = "weekly"  # on some weekdays, from a local time to a local time
EVENT = "event"  # over a range of moments (a concert, a fair)
BASE_LABEL = "base rate"  # names the base rate's lines in a breakdown that has rule lines


class FlexRule(NamedTuple):
    """One rate rule, as plain values (JSON as a list; lots.models.RateRule.as_flex).

    weekly: `weekdays` is a bit mask (bit 0 Monday … bit 6 Sunday); the rule holds
            from `start_minute` to `end_minute` of the local day (minutes after
            midnight, end 1440 = midnight; start < end: a night rule is two rules).
    event:  the rule holds over [starts_at, ends_at), POSIX seconds.
    """

    kind: str
    name: str
    amount: int  # per started hour, minor units
    priority: int = 0
    weekdays: int = 0
    start_minute: int = 0
    end_minute: int = 0
    starts_at: float | None = None
    ends_at: float | None = None

    def holds_at(self, moment: float, local: datetime) -> bool:
        if self.kind == EVENT:
            return self.starts_at <= moment < self.ends_at  # type: ignore[operator]
        minute = local.hour * 60 + local.minute
        return bool(self.weekdays >> local.weekday() & 1) and (
            self.start_minute <= minute < self.end_minute
        )

    @property
    def precedence(self) -> tuple:
        """Sorts the rule that wins first: an event before a weekly rule, then the
        higher priority, then the dearer amount, then the name (deterministic)."""
        return (self.kind != EVENT, -self.priority, -self.amount, self.name)


@lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


@dataclass(frozen=True)
class Tariff:
    """What a vehicle type costs at a lot: the base rate, the daily maximum, and
    the rate rules with the lot's time zone (to read their local times in).

    Each started hour, counted from the window's start in real elapsed hours, is
    charged at the amount in force at that hour's start: the first rule that
    holds then, by FlexRule.precedence, else the base hourly rate. Each 24-hour
    block from the start costs at most the daily maximum. Without rules it is
    exactly window_price.
    """

    hourly: int
    daily_max: int
    tz: str = "UTC"
    rules: tuple[FlexRule, ...] = ()

    def __post_init__(self) -> None:
        # From JSON the rules come as lists: make them FlexRules, in precedence order.
        rules = tuple(sorted((FlexRule(*rule) for rule in self.rules), key=_precedence))
        object.__setattr__(self, "rules", rules)

    def snapshot(self) -> dict | None:
        """The rules as JSON (Reservation.tariff_rules); None without rules."""
        if not self.rules:
            return None
        return {"tz": self.tz, "rules": [list(rule) for rule in self.rules]}

    @classmethod
    def from_snapshot(cls, hourly: int, daily_max: int, snapshot: dict | None) -> Tariff:
        """The tariff a booking was made with: its recorded rate and rules."""
        if not snapshot:
            return cls(hourly, daily_max)
        return cls(hourly, daily_max, snapshot["tz"], tuple(snapshot["rules"]))

    def hour_amounts(self, start: datetime, end: datetime) -> list[tuple[int, str]]:
        """(amount, rule name, "" for the base rate) of each started hour."""
        hours = started_hours(start, end)
        if not self.rules or not hours:
            return [(self.hourly, "")] * hours
        first = start.astimezone(UTC)
        last = (first + hours * HOUR).timestamp()
        # Events outside the window cannot change its price: leave them out.
        rules = [
            rule
            for rule in self.rules
            if rule.kind != EVENT or (rule.starts_at < last and rule.ends_at > first.timestamp())
        ]
        if not rules:
            return [(self.hourly, "")] * hours
        zone = _zone(self.tz)
        amounts = []
        for i in range(hours):
            moment = first + i * HOUR  # real hours: UTC arithmetic, then the local clock
            local = moment.astimezone(zone)
            stamp = moment.timestamp()
            rule = next((r for r in rules if r.holds_at(stamp, local)), None)
            amounts.append((self.hourly, "") if rule is None else (rule.amount, rule.name))
        return amounts

    def window_price(self, start: datetime, end: datetime) -> int:
        """Price, in minor units, of parking over [start, end)."""
        if not self.rules:
            return window_price(start, end, hourly=self.hourly, daily_max=self.daily_max)
        amounts = [amount for amount, _ in self.hour_amounts(start, end)]
        return sum(
            min(sum(amounts[i : i + 24]), self.daily_max) for i in range(0, len(amounts), 24)
        )

    def no_show_charge(self, start: datetime, end: datetime) -> int:
        """The first 24 hours of the window, or all of a shorter one."""
        return self.window_price(start, min(end, start + DAY))

    def price_breakdown(self, start: datetime, end: datetime) -> tuple[PriceLine, ...]:
        """How window_price adds up, line by line: hours × rate (named by the rule,
        or "base rate" beside rule lines) and capped days; sums to window_price."""
        if not self.rules:
            return price_breakdown(start, end, hourly=self.hourly, daily_max=self.daily_max)
        amounts = self.hour_amounts(start, end)
        flex = any(name for _, name in amounts)
        lines: list[PriceLine] = []
        for i in range(0, len(amounts), 24):
            block = amounts[i : i + 24]
            if sum(amount for amount, _ in block) > self.daily_max:
                parts = [PriceLine(DAILY_MAX, len(block), 1, self.daily_max)]
            else:
                groups: dict[tuple[int, str], int] = {}  # first seen first
                for key in block:
                    groups[key] = groups.get(key, 0) + 1
                parts = [
                    PriceLine(HOURLY, n, n, amount, name or (BASE_LABEL if flex else ""))
                    for (amount, name), n in groups.items()
                ]
            for line in parts:
                last = lines[-1] if lines else None
                if last and (last.kind, last.unit_amount, last.label) == (
                    line.kind,
                    line.unit_amount,
                    line.label,
                ):
                    line = PriceLine(
                        line.kind,
                        last.hours + line.hours,
                        last.quantity + line.quantity,
                        line.unit_amount,
                        line.label,
                    )
                    lines.pop()
                lines.append(line)
        return tuple(lines)


def _precedence(rule: FlexRule) -> tuple:
    return rule.precedence
