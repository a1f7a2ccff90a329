"""A reservation as an iCalendar event (RFC 5545), for "Add to calendar" on the pass.

Written by hand: one event, a few properties. Times are in UTC (…Z), so every
calendar shows them in its own zone; the UID is the reservation's, so importing
it again (after an extension) updates the event instead of adding one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.utils.translation import gettext

from reservations.models import Reservation, Status

_CANCELLED = (Status.CANCELLED, Status.EXPIRED)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _text(value: str) -> str:
    """A TEXT value: backslash, semicolon, comma and newline escaped."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    """Lines longer than 75 octets continue on the next, after a space."""
    data = line.encode()
    parts = []
    while len(data) > 75:
        cut = 75 if not parts else 74
        while cut and (data[cut] & 0xC0) == 0x80:  # never inside a UTF-8 character
            cut -= 1
        parts.append(data[:cut].decode())
        data = data[cut:]
    parts.append(data.decode())
    return "\r\n ".join(parts)


def reservation_ics(
    reservation: Reservation, *, site_url: str, pass_url: str, arrive_from: datetime, sequence: int
) -> str:
    """The reservation as a one-event calendar; `sequence` grows with each
    change (an extension) so that calendars take the newer one."""
    lot = reservation.lot
    host = urlsplit(site_url).hostname or "parkspot"
    # In the active language (the page's the driver downloaded it from).
    words = {
        "code": reservation.code,
        "spot": reservation.spot.label,
        "plate": reservation.vehicle_plate,
        "entry": f"{arrive_from.astimezone(lot.tz):%H:%M}",
        "zone": lot.timezone,
        "url": pass_url,
        "lot": lot.name,
    }
    description = (
        (
            gettext("Reservation code %(code)s, spot %(spot)s, vehicle %(plate)s.")
            if reservation.vehicle_plate
            else gettext("Reservation code %(code)s, spot %(spot)s.")
        )
        + "\n"
        + gettext(
            "Entry from %(entry)s (%(zone)s): at the gate, show your pass's QR code "
            "or say the code."
        )
        + "\n"
        + gettext("Your pass: %(url)s")
    ) % words
    summary = gettext("Parking at %(lot)s (%(code)s)") % words
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//ParkSpot//Reservations//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:reservation-{reservation.code}@{host}",
        f"DTSTAMP:{_utc(reservation.updated_at)}",
        f"SEQUENCE:{sequence}",
        f"DTSTART:{_utc(reservation.start)}",
        f"DTEND:{_utc(reservation.end)}",
        f"SUMMARY:{_text(summary)}",
        f"LOCATION:{_text(f'{lot.name}, {lot.address}, {lot.city}')}",
        f"DESCRIPTION:{_text(description)}",
        f"URL:{pass_url}",
        f"STATUS:{'CANCELLED' if reservation.status in _CANCELLED else 'CONFIRMED'}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "".join(_fold(line) + "\r\n" for line in lines)
