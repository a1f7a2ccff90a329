"""What a booking costs, whatever becomes of it: the one place these rules live.

Pure functions, like lots/pricing.py: no database, no settings, no clock. The
services apply them when a reservation ends; the API, the website and the admin
read them (through `terms`) to tell a driver before they commit.

    completed (on time or early)   the booked price
    overstayed                     the booked price, and separately each started hour
                                   past the end at the rates in force when booked
                                   (the tariff snapshot: base rate and flex rules)
    no-show                        the first 24 hours of the window (all of a shorter one)
    cancelled before the start     nothing
    cancelled after the start      by LATE_CANCEL_POLICY, never more than a no-show:
                                     charge   the no-show charge
                                     elapsed  the started hours since the start
                                     refund   nothing until the grace period ends
                                   and from start + grace, the no-show charge whatever
                                   the policy (the driver would be a no-show by then)
    unpaid hold lapsed             nothing
    extended before the end        the price of the longer window less the booked price
                                   (the booked rate; each 24 h from the start capped), paid
                                   like the booking: held, or charged at once when the new
                                   end lies beyond a card hold's life
    still parked long past the end the booked price is captured before the card hold
    (exit never reported)          can lapse; the departure, when it comes, charges the
                                   overstay
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# Tariff: the lot's rates (base and flex rules) as they were when the booking was made.
from lots.pricing import HOUR, PriceLine, Tariff

LATE_CANCEL_CHARGE = "charge"
LATE_CANCEL_ELAPSED = "elapsed"
LATE_CANCEL_REFUND = "refund"
LATE_CANCEL_POLICIES = (LATE_CANCEL_CHARGE, LATE_CANCEL_ELAPSED, LATE_CANCEL_REFUND)


@dataclass(frozen=True)
class Booking:
    """What the rules need to know of a reservation."""

    start: datetime
    end: datetime
    tariff: Tariff
    grace: timedelta  # how long after the start an arrival is still expected

    @property
    def price(self) -> int:
        return self.tariff.window_price(self.start, self.end)

    @property
    def breakdown(self) -> tuple[PriceLine, ...]:
        """The price line by line (hours × rate, capped days); sums to `price`."""
        return self.tariff.price_breakdown(self.start, self.end)

    @property
    def no_show_after(self) -> datetime:
        return self.start + self.grace


def no_show_charge(booking: Booking) -> int:
    """The first 24 hours of the window, or all of a shorter one."""
    return booking.tariff.no_show_charge(booking.start, booking.end)


def completion_charge(booking: Booking) -> int:
    """Leaving on time or early: the booked price (the spot was kept for the driver)."""
    return booking.price


def overstay_charge(booking: Booking, departed_at: datetime) -> int:
    """Each started hour past the end, at the booked rate (each 24 h capped)."""
    if departed_at <= booking.end:
        return 0
    return booking.tariff.window_price(booking.end, departed_at)


def cancellation_charge(booking: Booking, at: datetime, *, paid: bool, late_policy: str) -> int:
    """What cancelling at `at` costs. Unpaid holds and cancelling before the start
    are free; a late cancellation never costs more than not showing up."""
    if late_policy not in LATE_CANCEL_POLICIES:
        raise ValueError(f"unknown late cancellation policy {late_policy!r}")
    if not paid or at < booking.start:
        return 0
    ceiling = no_show_charge(booking)
    if at >= booking.no_show_after or late_policy == LATE_CANCEL_CHARGE:
        return ceiling
    if late_policy == LATE_CANCEL_ELAPSED:
        # At least the first started hour: the spot was held for the driver.
        held = booking.tariff.window_price(booking.start, max(at, booking.start + HOUR))
        return min(held, ceiling)
    return 0


def free_cancellation_until(booking: Booking, *, late_policy: str) -> datetime:
    """Until when cancelling costs nothing."""
    if late_policy == LATE_CANCEL_REFUND:
        return booking.no_show_after
    return booking.start


def unreported_exit_capture_at(booking: Booking, *, after: timedelta) -> datetime:
    """When a car still parked (the gate never reported its exit) has the booked
    price captured, well before a card hold (about 7 days) could lapse."""
    return booking.end + after


def extension_charge(booking: Booking, new_end: datetime) -> int:
    """What moving the end of a booking to `new_end` adds: the price of the longer
    window at the booked rate, less the price of the booked one (never negative:
    a window's price only grows with its end)."""
    if new_end <= booking.end:
        return 0
    return max(booking.tariff.window_price(booking.start, new_end) - booking.price, 0)


def extended(booking: Booking, new_end: datetime) -> Booking:
    """The booking as it is once its end has moved."""
    return Booking(start=booking.start, end=new_end, tariff=booking.tariff, grace=booking.grace)


def charged_at_once(booking: Booking, paid_at: datetime, *, card_hold_max: timedelta) -> bool:
    """Card holds lapse after about 7 days: a booking that ends (and so settles)
    later than that after paying is charged in full at once, and what is not owed
    in the end is refunded; otherwise the card is only authorised until then."""
    return booking.end > paid_at + card_hold_max
