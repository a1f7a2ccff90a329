"""Booking-window rules of DESIGN §4, shared by the API, the website and services."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from config.errors import InvalidInput


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
    if end - start > timedelta(days=settings.BOOKING_MAX_DAYS):
        raise InvalidInput(
            f"A booking lasts at most {settings.BOOKING_MAX_DAYS} days.",
            code="window_too_long",
            field="end",
        )
    if start < now - timedelta(minutes=settings.BOOKING_MAX_PAST_MINUTES):
        raise InvalidInput("The start is in the past.", code="start_in_past", field="start")
    if start > now + timedelta(days=settings.BOOKING_MAX_AHEAD_DAYS):
        raise InvalidInput(
            f"Bookings open {settings.BOOKING_MAX_AHEAD_DAYS} days ahead.",
            code="start_too_far_ahead",
            field="start",
        )


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
    if new_end - start > timedelta(days=settings.BOOKING_MAX_DAYS):
        raise InvalidInput(
            f"A booking lasts at most {settings.BOOKING_MAX_DAYS} days.",
            code="window_too_long",
            field="end",
        )
