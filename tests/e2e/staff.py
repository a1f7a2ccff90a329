"""What the lot staff's browser journeys share: a lot run by one staff member
beside another lot they must never see, logging in to the admin, and axe-core."""

from __future__ import annotations

import json
from pathlib import Path

from lots.models import Lot, LotStaff
from lots.services import rate_set, spots_add
from parking.management.commands.seed_demo import STAFF_PERMISSIONS
from parking.models import User
from parking.services import group_ensure
from tests.factories import LotFactory, UserFactory

STAFF_EMAIL = "staff@example.com"
STAFF_PASSWORD = "a long enough pass phrase"
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"


def paris_and_tokyo(*, car_spots: int | None = 3) -> tuple[Lot, Lot]:
    """Paris Opéra and Tokyo Shinjuku, with a car rate and `car_spots` car spots
    each (None: no spots, the test adds its own)."""
    lot = LotFactory(
        slug="paris-opera", name="Paris Opéra", timezone="Europe/Paris", currency="eur"
    )
    other = LotFactory(slug="tokyo", name="Tokyo Shinjuku", timezone="Asia/Tokyo", currency="jpy")
    for each in (lot, other):
        rate_set(lot=each, vehicle_type="car", hourly_amount=350, daily_max_amount=2800)
        if car_spots:
            spots_add(lot=each, vehicle_type="car", count=car_spots, prefix="C")
    return lot, other


def staff_member_of(lot: Lot) -> User:
    """staff@example.com, with the lot staff's permissions, a member of `lot` only."""
    staff = UserFactory(email=STAFF_EMAIL, is_staff=True, password=STAFF_PASSWORD)
    staff.groups.add(group_ensure(name="Lot staff", permissions=STAFF_PERMISSIONS))
    LotStaff.objects.create(lot=lot, user=staff)
    return staff


def admin_log_in(page, base_url: str) -> None:
    page.goto(base_url + "/admin/login/")
    page.fill("#id_username", STAFF_EMAIL)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(base_url + "/admin/")


def assert_accessible(page, name: str) -> None:
    """axe-core finds nothing serious or critical on the page."""
    page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    serious = [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{name}: {json.dumps(serious, indent=2)}"
