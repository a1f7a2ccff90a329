"""`python manage.py seed_demo`: demo lots, rates, spots, gates and logins, idempotently.

Everything goes through the services, looked up first and only created or
changed when missing or different, so running it again changes nothing. The
demo staff user runs one lot only (LotStaff); a gate's key is printed when the
gate is created, and never again (only its hash is kept).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import time
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from lots.constants import VehicleType
from lots.hours import Hours
from lots.models import GateDevice, Lot
from lots.selectors import opening_hours_of
from lots.services import (
    gate_create,
    lot_create,
    lot_facts_set,
    lot_staff_assign,
    rate_set,
    spots_add,
)
from parking.services import group_ensure, user_ensure
from reservations.services.demo import demo_bookings_ensure, demo_drivers_ensure

SITE_URL = "http://127.0.0.1:8000"
# Demo logins only: they are printed on start. Set DEMO_PASSWORD to change them.
DEFAULT_DEMO_PASSWORD = "parkspot-demo"  # noqa: S105

DRIVER_EMAIL = "driver@parkspot.test"
STAFF_EMAIL = "staff@parkspot.test"
ADMIN_EMAIL = "admin@parkspot.test"
STAFF_GROUP = "Lot staff"
VIEW_ADD_CHANGE = ("view", "add", "change")
STAFF_PERMISSIONS = [
    *(f"lots.{action}_{model}" for model in ("lot", "spot", "rate") for action in VIEW_ADD_CHANGE),
    # Flex rates (rules by weekday and time, event rates): a rule no longer wanted is deleted.
    *(f"lots.{action}_raterule" for action in (*VIEW_ADD_CHANGE, "delete")),
    "reservations.view_reservation",
    "reservations.add_reservation",
    "reservations.change_reservation",
    "reservations.view_reservationevent",
    # Closing their lot, or some of its spots, for a while (lifted, never deleted).
    *(f"reservations.{action}_closure" for action in VIEW_ADD_CHANGE),
    *(f"lots.{action}_gatedevice" for action in VIEW_ADD_CHANGE),
    # Staff keep their lots' opening hours: a day they stop opening is a row deleted.
    *(f"lots.{action}_openinghours" for action in (*VIEW_ADD_CHANGE, "delete")),
    "payments.view_payment",
    # Their lots' partner webhooks: endpoints (turned off, not deleted) and the delivery log.
    *(f"lots.{action}_webhookendpoint" for action in VIEW_ADD_CHANGE),
    "lots.view_webhookdelivery",
]
# The one lot the demo staff user runs; in the admin they see no other.
STAFF_LOT = "paris-opera"
GATE_NAME = "Main entrance"

# Spots per vehicle type, and the label prefix painted on them.
SPOTS = {VehicleType.MOTORCYCLE: ("M", 10), VehicleType.CAR: ("C", 40), VehicleType.VAN: ("V", 10)}
# Car spots with features (lots/features.py), beyond those: prefix, count, features.
FEATURED_SPOTS = (
    ("E", 4, {"has_ev_charging": True, "is_covered": True}),  # EV chargers, under a roof
    ("A", 2, {"is_accessible": True, "is_covered": True}),  # disabled parking by the exit
    ("R", 4, {"is_covered": True, "max_height_cm": 190}),  # the low covered row
)


@dataclass(frozen=True)
class DemoLot:
    slug: str
    name: str
    address: str
    city: str
    timezone: str
    currency: str
    latitude: Decimal
    longitude: Decimal
    # (hourly, daily maximum) per vehicle type, in the currency's minor units.
    rates: dict[str, tuple[int, int]]
    height_limit_cm: int | None = None
    entry_instructions: str = ""
    opening_hours: tuple[Hours, ...] = ()  # none: open 24/7


DEMO_LOTS = [
    DemoLot(
        slug="paris-opera",
        name="Paris Opéra",
        address="12 Rue Auber, 75009 Paris",
        city="Paris",
        timezone="Europe/Paris",
        currency="eur",
        latitude=Decimal("48.872100"),
        longitude=Decimal("2.331000"),
        # €1.50 / €3.50 / €5.00 an hour; €12 / €28 / €40 a day.
        rates={"motorcycle": (150, 1200), "car": (350, 2800), "van": (500, 4000)},
        height_limit_cm=190,
        entry_instructions="Drive in from Rue Auber, opposite the Opéra's side entrance. "
        "Show your pass's QR code at the barrier; the lift to the street is beside spot C-001.",
    ),
    DemoLot(
        slug="nyc-midtown",
        name="New York Midtown",
        address="350 W 42nd St, New York, NY 10036",
        city="New York",
        timezone="America/New_York",
        currency="usd",
        latitude=Decimal("40.757600"),
        longitude=Decimal("-73.991900"),
        # $6 / $12 / $18 an hour; $30 / $45 / $70 a day.
        rates={"motorcycle": (600, 3000), "car": (1200, 4500), "van": (1800, 7000)},
        height_limit_cm=210,
        entry_instructions="Entrance on W 42nd St between 9th and 10th Avenue; "
        "an attendant scans your pass.",
    ),
    DemoLot(
        slug="tokyo-shinjuku",
        name="Tokyo Shinjuku",
        address="3-38-1 Shinjuku, Shinjuku City, Tokyo 160-0022",
        city="Tokyo",
        timezone="Asia/Tokyo",
        currency="jpy",
        latitude=Decimal("35.690900"),
        longitude=Decimal("139.700300"),
        # The yen has no minor unit: these are whole yen.
        rates={"motorcycle": (200, 1200), "car": (600, 3000), "van": (900, 4500)},
        entry_instructions="Enter from Meiji-dori; the gate opens for your pass's QR code.",
        # Closed from midnight to 06:00 every night.
        opening_hours=tuple((day, time(6), time(0)) for day in range(7)),
    ),
]


class Command(BaseCommand):
    help = "Create demo lots, rates, spots, a driver, a staff user and an admin (idempotent)."

    def handle(self, *args, **options) -> None:
        password = os.environ.get("DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD
        # All or nothing: a failure half-way leaves the database as it was.
        with transaction.atomic():
            lots = [self._ensure_lot(demo) for demo in DEMO_LOTS]
            new_keys = {lot.pk: key for lot in lots if (key := self._ensure_gate(lot))}
            staff_group = group_ensure(name=STAFF_GROUP, permissions=STAFF_PERMISSIONS)
            user_ensure(email=DRIVER_EMAIL, password=password, full_name="Demo Driver")
            staff = user_ensure(
                email=STAFF_EMAIL,
                password=password,
                full_name="Demo Lot Staff",
                is_staff=True,
                groups=[staff_group],
            )
            staff_lot = next(lot for lot in lots if lot.slug == STAFF_LOT)
            lot_staff_assign(lot=staff_lot, user=staff)
            user_ensure(
                email=ADMIN_EMAIL, password=password, full_name="Demo Admin", is_superuser=True
            )
            # A past week and a coming week of bookings, for the occupancy view,
            # the reports and the needs-attention page to show something.
            drivers = demo_drivers_ensure()
            now = timezone.now()
            booked = {
                lot.slug: demo_bookings_ensure(lot=lot, drivers=drivers, now=now) for lot in lots
            }
        self._print_summary(lots, password, staff_lot=staff_lot, new_keys=new_keys)
        if any(booked.values()):
            made = ", ".join(f"{slug} {n}" for slug, n in booked.items() if n)
            self.stdout.write(f"Demo bookings (a past and a coming week): {made}.")

    def _ensure_gate(self, lot: Lot) -> str | None:
        """A gate for the lot; its key if it was made now (keys exist only then)."""
        if GateDevice.objects.filter(lot=lot).exists():
            return None
        _, key = gate_create(lot=lot, name=GATE_NAME)
        return key

    def _ensure_lot(self, demo: DemoLot) -> Lot:
        lot = Lot.objects.filter(slug=demo.slug).first()
        if lot is None:
            lot = lot_create(
                slug=demo.slug,
                name=demo.name,
                address=demo.address,
                city=demo.city,
                timezone=demo.timezone,
                currency=demo.currency,
                latitude=demo.latitude,
                longitude=demo.longitude,
            )
        for vehicle_type, (hourly, daily_max) in demo.rates.items():
            rate_set(
                lot=lot, vehicle_type=vehicle_type, hourly_amount=hourly, daily_max_amount=daily_max
            )
        for vehicle_type, (prefix, wanted) in SPOTS.items():
            have = lot.spots.filter(vehicle_type=vehicle_type).count()
            if have < wanted:
                spots_add(lot=lot, vehicle_type=vehicle_type, count=wanted - have, prefix=prefix)
        for prefix, wanted, features in FEATURED_SPOTS:
            have = lot.spots.filter(label__startswith=f"{prefix}-").count()
            if have < wanted:
                spots_add(
                    lot=lot,
                    vehicle_type=VehicleType.CAR,
                    count=wanted - have,
                    prefix=prefix,
                    **features,
                )
        facts = (lot.height_limit_cm, lot.entry_instructions, opening_hours_of(lot))
        if facts == (demo.height_limit_cm, demo.entry_instructions, demo.opening_hours):
            return lot
        return lot_facts_set(
            lot=lot,
            height_limit_cm=demo.height_limit_cm,
            entry_instructions=demo.entry_instructions,
            opening_hours=list(demo.opening_hours),
        )

    def _print_summary(
        self, lots: list[Lot], password: str, *, staff_lot: Lot, new_keys: dict[int, str]
    ) -> None:
        rule = "=" * 72
        lines = [
            rule,
            "ParkSpot demo data is ready.",
            "",
            f"  Website    {SITE_URL}/",
            f"  Admin      {SITE_URL}/admin/",
            f"  API docs   {SITE_URL}/api/v1/docs/",
            "",
            "  Logins (password for all three: " + password + ")",
            f"    driver   {DRIVER_EMAIL}",
            f"    staff    {STAFF_EMAIL}   (admin, {staff_lot.name} only: spots, rates, "
            "gates, reservations, refunds, occupancy)",
            f"    admin    {ADMIN_EMAIL}   (superuser)",
            "",
            "  Lots (lot_id  name  time zone  currency  spots)",
        ]
        for lot in lots:
            counts = {
                vt: lot.spots.filter(vehicle_type=vt, is_active=True).count()
                for vt in VehicleType.values
            }
            spots = " ".join(f"{vt}={n}" for vt, n in counts.items())
            lines.append(
                f"    {lot.slug:<16} {lot.name:<18} {lot.timezone:<18} {lot.currency}  {spots}"
            )
        lines += ["", "  Gate keys (for POST /api/v1/gate/...; a key is shown only when made)"]
        gates = GateDevice.objects.filter(lot__in=lots).select_related("lot").order_by("lot__slug")
        for gate in gates:
            if gate.lot_id in new_keys and gate.name == GATE_NAME:
                key = new_keys[gate.lot_id]
            else:
                state = "active" if gate.is_active else "revoked"
                key = f"{gate.key_prefix}…  ({state}; made earlier, its key is not shown again)"
            lines.append(f"    {gate.lot.slug:<16} {gate.name:<16} {key}")
        lines.append(rule)
        self.stdout.write("\n".join(lines))
