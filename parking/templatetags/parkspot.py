"""Template helpers of the website and e-mails: money, times at a lot, the pass QR code.

Each writes in the active language (English: the examples; French: 12,50 €,
mer. 4 mars 2026, 11:00).

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
from django.utils.translation import get_language, gettext, ngettext, pgettext

from config.money import format_money
from config.qr import qr_code
from lots.features import SpotFeature, spot_features
from lots.pricing import DAILY_MAX
from reservations.models import Status
from reservations.selectors import status_now

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

# French abbreviations as French writes them (CLDR), not Django's date filter's
# ("mar" and "déc" without their full stop): mar. 1 déc. 2026, 06:00.
FRENCH_DAYS = ("lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim.")
FRENCH_MONTHS = (
    "janv.", "févr.", "mars", "avr.", "mai", "juin",
    "juil.", "août", "sept.", "oct.", "nov.", "déc.",
)  # fmt: skip


def format_date_time(value: datetime, *, with_date: bool = True) -> str:
    """A wall-clock moment in the active language: "Tue 1 Dec 2026, 06:00" or
    "mar. 1 déc. 2026, 06:00"; only "06:00" without the date."""
    if not with_date:
        return dateformat.format(value, TIME)
    if (get_language() or "en").startswith("fr"):
        day, month = FRENCH_DAYS[value.weekday()], FRENCH_MONTHS[value.month - 1]
        return f"{day} {value.day} {month} {value.year}, {value:%H:%M}"
    return dateformat.format(value, DATE_TIME)


@register.filter
def lot_time(value: datetime | None, tz) -> str:
    """A moment as the clock at the lot shows it: Wed 4 Mar 2026, 11:00."""
    local = in_zone(value, tz)
    return format_date_time(local) if local else ""


@register.filter
def lot_clock(value: datetime | None, tz) -> str:
    """Only the time of day at the lot: 11:00."""
    local = in_zone(value, tz)
    return dateformat.format(local, TIME) if local else ""


@register.filter
def site_time(value) -> str:
    """A wall-clock time as the site writes it (Thu 5 Mar 2026, 10:00), whatever
    the browser's own format for time inputs; "" for anything else."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
        except ValueError:
            return ""
    if not isinstance(value, datetime):
        return ""
    return format_date_time(value)


@register.filter
def lot_time_tz(value: datetime | None, tz) -> str:
    """A moment at the lot, naming its zone: Wed 4 Mar 2026, 11:00 CET."""
    local = in_zone(value, tz)
    return f"{format_date_time(local)} {local.tzname()}" if local else ""


@register.filter
def lot_clock_tz(value: datetime | None, tz) -> str:
    """The time of day at the lot, naming its zone: 11:00 CET."""
    local = in_zone(value, tz)
    return f"{dateformat.format(local, TIME)} {local.tzname()}" if local else ""


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
    first = format_date_time(start_local)
    if start_local.date() == end_local.date():
        return f"{first}{DASH}{dateformat.format(end_local, TIME)}"
    return f"{first}{DASH}{format_date_time(end_local)}"


def format_duration(delta: timedelta) -> str:
    minutes = max(0, round(delta.total_seconds() / 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = []
    if days:
        parts.append(ngettext("%(count)d day", "%(count)d days", days) % {"count": days})
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


@register.filter
def price_line(line, currency: str) -> str:
    """One line of a price breakdown (lots.pricing.PriceLine), in words:
    "3 h × €2.50", "3 h × €4.00 (weekday peak)", "34 h at the daily maximum: 2 days × €20.00"."""
    unit = format_money(line.unit_amount, currency)
    if line.kind == DAILY_MAX:
        blocks = ngettext("%(count)d day", "%(count)d days", line.quantity) % {
            "count": line.quantity
        }
        return gettext("%(hours)s h at the daily maximum: %(blocks)s × %(unit)s") % {
            "hours": line.hours,
            "blocks": blocks,
            "unit": unit,
        }
    if line.label:  # flex rates: which rate these hours are at
        return gettext("%(hours)s h × %(unit)s (%(label)s)") % {
            "hours": line.quantity,
            "unit": unit,
            "label": line.label,
        }
    return f"{line.quantity} h × {unit}"


@register.filter
def rule_days(rule) -> str:
    """A weekly rate rule's weekdays, short: "Mon–Fri", "Sat, Sun", "Every day"."""
    days = rule.weekday_list
    names = [
        pgettext("weekday", "Mon"),
        pgettext("weekday", "Tue"),
        pgettext("weekday", "Wed"),
        pgettext("weekday", "Thu"),
        pgettext("weekday", "Fri"),
        pgettext("weekday", "Sat"),
        pgettext("weekday", "Sun"),
    ]
    if len(days) == 7:
        return gettext("Every day")
    if len(days) > 2 and days == list(range(days[0], days[-1] + 1)):
        return f"{names[days[0]]}–{names[days[-1]]}"
    return ", ".join(names[day] for day in days)


@register.filter
def late_cancel_rule(terms) -> str:
    """What cancelling costs once the reservation has started, by the late
    cancellation policy (reservations.selectors.Terms)."""
    no_show = format_money(terms.no_show_charge, terms.currency)
    if terms.late_cancel_policy == "refund":
        grace_end = lot_time_tz(terms.no_show_after, terms.lot_timezone)
        return gettext(
            "Cancelling is free until %(grace_end)s; after that it costs the no-show "
            "charge of %(no_show)s."
        ) % {"grace_end": grace_end, "no_show": no_show}
    if terms.late_cancel_policy == "elapsed":
        return gettext(
            "After your reservation starts, cancelling costs the hours since it started, "
            "never more than the no-show charge of %(no_show)s."
        ) % {"no_show": no_show}
    return gettext(
        "After your reservation starts, cancelling costs the no-show charge of %(no_show)s "
        "(the first 24 hours), never more."
    ) % {"no_show": no_show}


@register.simple_tag
def qr_svg(code: str, label: str = "") -> SafeString:
    """The reservation code as an inline, scalable SVG QR code with a text alternative."""
    label = label or gettext("QR code of reservation %(code)s") % {"code": code}
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
def shown_status(reservation) -> str:
    """The reservation's status by the clock (a lapsed hold is expired)."""
    return status_now(reservation)


@register.filter
def shown_status_label(reservation) -> str:
    return Status(status_now(reservation)).label


@register.filter
def status_tone(status: str) -> str:
    """The badge colour of a reservation status."""
    return STATUS_TONES.get(status, "neutral")


@register.filter
def hold_clock(seconds: int | None) -> str:
    """Seconds left as a clock: 14:05."""
    seconds = max(0, int(seconds or 0))
    return f"{seconds // 60}:{seconds % 60:02d}"


@register.filter
def spot_feature_labels(spot) -> list[str]:
    """What a spot has, for people: ["EV charging", "Covered", "Up to 2.10 m"]."""
    if spot is None:
        return []
    labels = [str(SpotFeature(name).label) for name in spot_features(spot)]
    if spot.max_height_cm is not None:
        labels.append(gettext("Up to %(metres)s m") % {"metres": f"{spot.max_height_cm / 100:.2f}"})
    return labels


@register.filter
def spot_labels(spots) -> str:
    """Spots as painted on the ground, in a list: "C-003, C-004"."""
    return ", ".join(spot.label for spot in spots)
