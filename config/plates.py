"""Vehicle plates as every part of ParkSpot compares them: drivers type them,
gates read them, bookings are checked against them."""

from __future__ import annotations

import re

_PLATE_JUNK = re.compile(r"[\s\-\.]+")


def normalize_plate(plate: str) -> str:
    """Plates compare equal however they are typed: upper case, no spaces or dashes."""
    return _PLATE_JUNK.sub("", plate or "").upper()
