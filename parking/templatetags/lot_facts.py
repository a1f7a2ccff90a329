"""Template helpers for what a driver needs to find and enter a lot.

{% load lot_facts %}
{{ lot|weekly_hours }}     → [("Mon–Fri", "07:00–22:00"), ("Sat–Sun", "Closed")]; [] for 24/7
{{ lot.height_limit_cm|height }} → 1.90 m
{{ lot|directions_url }}   → https://www.google.com/maps/dir/?api=1&destination=48.8721,2.331
{{ offer.distance_m|distance }} → 850 m, 1.2 km, 37 km
"""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.utils.translation import get_language

from lots.hours import weekly_summary
from lots.models import Lot
from lots.selectors import opening_hours_of

register = template.Library()


def _decimal(number: str) -> str:
    """A decimal point as the active language writes it (1,90 in French)."""
    return number.replace(".", ",") if (get_language() or "en").startswith("fr") else number


@register.filter
def weekly_hours(lot: Lot) -> list[tuple[str, str]]:
    return weekly_summary(opening_hours_of(lot))


@register.filter
def height(centimetres: int | None) -> str:
    if centimetres is None:
        return ""
    return _decimal(f"{centimetres / 100:.2f}") + " m"


@register.filter
def directions_url(lot: Lot) -> str:
    """A maps link for driving there: a plain link (no script, no embedded map),
    opened by the driver's own maps app or site."""
    if lot.latitude is None or lot.longitude is None:
        return ""
    destination = f"{lot.latitude.normalize():f},{lot.longitude.normalize():f}"
    return "https://www.google.com/maps/dir/?" + urlencode(
        {"api": "1", "destination": destination}, safe=","
    )


@register.filter
def distance(metres: int | None) -> str:
    if metres is None:
        return ""
    if metres < 1000:
        return f"{metres} m"
    if metres < 10_000:
        return _decimal(f"{metres / 1000:.1f}") + " km"
    return f"{round(metres / 1000)} km"
