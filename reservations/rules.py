"""Booking-window rules of DESIGN §4, shared by the API, the website and services."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from config.errors import Conflict, InvalidInput
from lots.hours import first_closed_moment, weekly_summary
from lots.selectors import Schedule, lot_schedule


def _check_longest(*, start: datetime, end: datetime) -> None:
    """One rule for a booking's length, however it got there (booked or extended)."""
    if end - start > timedelta(days=settings.BOOKING_MAX_DAYS):
        raise InvalidInput(
            f"A booking lasts at most {settings.BOOKING_MAX_DAYS} days.",
            code="window_too_long",
            field="end",
        )


def validate_window(*, start: datetime, end: datetime, now: datetime) -> None:
    """Raise InvalidInput (400, with a code and the field at fault) for a bad window."""
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput(
                "Give times with a UTC offset, e.g. 2026-05-01T09:00:00+02:00.",
                code="naive_datetime",
                field=name,
            )
    if end <= start:
        raise InvalidInput("The end must be after the start.", code="end_before_start", field="end")
    shortest = timedelta(minutes=settings.BOOKING_MIN_MINUTES)
    if end - start < shortest:
        raise InvalidInput(
            f"A booking lasts at least {settings.BOOKING_MIN_MINUTES} minutes.",
            code="window_too_short",
            field="end",
        )
    _check_longest(start=start, end=end)
    if start < now - timedelta(minutes=settings.BOOKING_MAX_PAST_MINUTES):
        raise InvalidInput("The start is in the past.", code="start_in_past", field="start")
    if start > now + timedelta(days=settings.BOOKING_MAX_AHEAD_DAYS):
        raise InvalidInput(
            f"Bookings open {settings.BOOKING_MAX_AHEAD_DAYS} days ahead.",
            code="start_too_far_ahead",
            field="start",
        )


class OutsideOpeningHours(Conflict):
    code = "outside_opening_hours"


def check_opening_hours(*, schedule: Schedule, start: datetime, end: datetime) -> None:
    """Raise OutsideOpeningHours (409) unless the lot is open for the whole window."""
    closed_at = first_closed_moment(schedule.hours, schedule.tz, start, end)
    if closed_at is None:
        return
    local = closed_at.astimezone(schedule.tz)
    when = f"{local:%a} {local.day} {local:%b %Y} at {local:%H:%M}"
    hours = ", ".join(f"{days} {text}" for days, text in weekly_summary(schedule.hours))
    raise OutsideOpeningHours(
        f"{schedule.lot_name} is closed on {when} (local time), within the times you chose; "
        f"its opening hours are {hours}.",
        field="start" if closed_at == start else "end",
    )


def validate_opening_hours(*, lot_pk: int, start: datetime, end: datetime) -> None:
    """The lot must be open for the whole window: a booking or an availability
    answer outside its opening hours is refused (409 outside_opening_hours). One
    query (the lot's zone and hours)."""
    schedule = lot_schedule(lot_pk=lot_pk)
    if schedule is not None and schedule.hours:
        check_opening_hours(schedule=schedule, start=start, end=end)


def validate_extension(*, start: datetime, end: datetime, new_end: datetime) -> None:
    """Raise InvalidInput (400) for a new end that cannot extend [start, end): naive,
    not later than the current end, or making the booking longer than allowed."""
    if new_end.tzinfo is None or new_end.utcoffset() is None:
        raise InvalidInput(
            "Give times with a UTC offset, e.g. 2026-05-01T09:00:00+02:00.",
            code="naive_datetime",
            field="end",
        )
    if new_end <= end:
        raise InvalidInput(
            "The new end must be later than the current end.",
            code="end_not_later",
            field="end",
        )
    _check_longest(start=start, end=new_end)
