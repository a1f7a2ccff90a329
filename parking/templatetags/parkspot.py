"""Template helpers of the website and e-mails: money, times at a lot, the pass QR code.

{% load parkspot %}
{{ reservation.price_amount|money:reservation.currency }}    → €12.50, ¥1,200
{{ reservation.start|lot_time:reservation.lot }}              → Wed 4 Mar 2026, 11:00
{% window reservation.start reservation.end reservation.lot %} → Wed 4 Mar 2026, 11:00-13:00
{% qr_svg reservation.code %}                                  → an inline <svg>
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta

from django import template
from django.utils import dateformat
from django.utils.safestring import SafeString, mark_safe

from config.money import format_money
from config.qr import qr_code

register = template.Library()

DASH = " \u2013 "  # an en dash between spaces, for ranges


@register.filter
def money(amount: int | None, currency: str) -> str:
    return format_money(amount, currency)


def _zone(tz) -> zoneinfo.ZoneInfo:
    """A lot, a ZoneInfo or an IANA name."""
    if isinstance(tz, zoneinfo.ZoneInfo):
        return tz
    name = getattr(tz, "timezone", tz)
    return zoneinfo.ZoneInfo(str(name))


def in_zone(value: datetime | None, tz) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(_zone(tz))


# Formats of Django's `date` filter.
DATE_TIME = "D j M Y, H:i"
DATE = "D j M Y"
TIME = "H:i"


@register.filter
def lot_time(value: datetime | None, tz) -> str:
    """A moment as the clock at the lot shows it: Wed 4 Mar 2026, 11:00."""
    local = in_zone(value, tz)
    return dateformat.format(local, DATE_TIME) if local else ""


@register.filter
def lot_clock(value: datetime | None, tz) -> str:
    """Only the time of day at the lot: 11:00."""
    local = in_zone(value, tz)
    return dateformat.format(local, TIME) if local else ""


@register.filter
def lot_tz_abbr(value: datetime | None, tz) -> str:
    """The zone's abbreviation at that moment (CET, CEST, EST, JST)."""
    local = in_zone(value, tz)
    return local.tzname() if local else ""


@register.simple_tag
def window(start: datetime, end: datetime, tz) -> str:
    """A window at the lot: "Wed 4 Mar 2026, 11:00-13:00", or with both dates
    when it spans midnight."""
    start_local, end_local = in_zone(start, tz), in_zone(end, tz)
    if start_local is None or end_local is None:
        return ""
    first = dateformat.format(start_local, DATE_TIME)
    if start_local.date() == end_local.date():
        return f"{first}{DASH}{dateformat.format(end_local, TIME)}"
    return f"{first}{DASH}{dateformat.format(end_local, DATE_TIME)}"


def format_duration(delta: timedelta) -> str:
    minutes = max(0, round(delta.total_seconds() / 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = []
    if days:
        parts.append(f"{days} day" + ("s" if days != 1 else ""))
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    return " ".join(parts) or "0 min"


@register.simple_tag
def duration(start: datetime, end: datetime) -> str:
    """How long a window lasts: "2 h 30 min", "3 days 2 h"."""
    if start is None or end is None:
        return ""
    return format_duration(end - start)


@register.simple_tag
def qr_svg(code: str, label: str = "") -> SafeString:
    """The reservation code as an inline, scalable SVG QR code with a text alternative."""
    label = label or f"QR code of reservation {code}"
    svg = qr_code(code).svg_inline(
        scale=1,
        border=4,
        omitsize=True,
        dark="#0b1f33",
        light="#ffffff",
        svgclass="qr",
        lineclass=None,
        title=label,
    )
    return mark_safe(svg.replace("<svg ", '<svg role="img" focusable="false" ', 1))  # noqa: S308  (segno's own output; the title is escaped by segno)


STATUS_TONES = {
    "pending_payment": "warning",
    "confirmed": "success",
    "parked": "info",
    "completed": "neutral",
    "no_show": "danger",
    "cancelled": "neutral",
    "expired": "neutral",
}


@register.filter
def status_tone(status: str) -> str:
    """The badge colour of a reservation status."""
    return STATUS_TONES.get(status, "neutral")


@register.filter
def hold_clock(seconds: int | None) -> str:
    """Seconds left as a clock: 14:05."""
    seconds = max(0, int(seconds or 0))
    return f"{seconds // 60}:{seconds % 60:02d}"
