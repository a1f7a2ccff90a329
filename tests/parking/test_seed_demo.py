"""`manage.py seed_demo`: demo lots in several time zones and currencies, and logins."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.http import HttpRequest
from django.test import Client

from lots.constants import VehicleType
from lots.models import GateDevice, Lot, LotStaff, Rate, Spot
from lots.services import hash_key
from parking.models import User

pytestmark = pytest.mark.django_db

DEMO_PASSWORD = "parkspot-demo"


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def snapshot() -> dict:
    """Everything seed_demo writes, to compare two runs."""
    return {
        "lots": sorted(
            Lot.objects.values_list("slug", "timezone", "currency", "availability_version")
        ),
        "spots": sorted(
            Spot.objects.values_list("lot__slug", "label", "vehicle_type", "public_id")
        ),
        "rates": sorted(
            Rate.objects.values_list(
                "lot__slug", "vehicle_type", "hourly_amount", "daily_max_amount"
            )
        ),
        "users": sorted(
            User.objects.values_list("email", "password", "is_staff", "is_superuser", "is_active")
        ),
        "groups": sorted(
            Group.objects.values_list(
                "name", "permissions__content_type__app_label", "permissions__codename"
            )
        ),
        "memberships": sorted(
            User.groups.through.objects.values_list("user__email", "group__name")
        ),
        "lot_staff": sorted(LotStaff.objects.values_list("lot__slug", "user__email", "role")),
        "gates": sorted(GateDevice.objects.values_list("lot__slug", "name", "key_hash")),
    }


def test_seed_creates_lots_in_three_time_zones_and_currencies_with_every_type():
    seed()

    lots = list(Lot.objects.all())
    assert len(lots) >= 3
    assert len({lot.timezone for lot in lots}) >= 3
    assert len({lot.currency for lot in lots}) >= 3
    assert {"eur", "usd", "jpy"} <= {lot.currency for lot in lots}
    for lot in lots:
        types = set(lot.spots.filter(is_active=True).values_list("vehicle_type", flat=True))
        assert types == set(VehicleType.values), lot.slug
        rates = {rate.vehicle_type: rate for rate in lot.rates.all()}
        assert set(rates) == set(VehicleType.values), lot.slug
        for rate in rates.values():
            assert 0 < rate.hourly_amount <= rate.daily_max_amount
        # Labels are unique per lot and numbered per type.
        assert lot.spots.filter(label="C-001", vehicle_type="car").exists()


def test_every_demo_lot_has_ev_accessible_covered_and_low_spots():
    seed()
    seed()  # and only once

    for lot in Lot.objects.all():
        cars = lot.spots.filter(vehicle_type="car", is_active=True)
        assert cars.filter(has_ev_charging=True).count() == 4, lot.slug
        assert cars.filter(is_accessible=True).count() == 2, lot.slug
        assert cars.filter(is_covered=True).count() == 10, lot.slug
        assert cars.filter(max_height_cm=190).count() == 4, lot.slug
        assert cars.filter(label__startswith="C-", has_ev_charging=False).count() == 40


def test_seed_uses_whole_yen_in_tokyo():
    seed()
    tokyo = Lot.objects.get(currency="jpy")
    car = tokyo.rates.get(vehicle_type="car")
    # Whole yen, not "cents": an hour of parking in Tokyo is hundreds of yen, not 6.
    assert 100 <= car.hourly_amount <= 2000
    assert tokyo.timezone == "Asia/Tokyo"


def test_running_it_twice_changes_nothing():
    seed()
    first = snapshot()

    seed()

    assert snapshot() == first


def test_it_completes_a_partly_seeded_database():
    seed()
    lot = Lot.objects.get(slug="paris-opera")
    lot.spots.filter(vehicle_type="van", label__in=["V-009", "V-010"]).delete()
    lot.rates.filter(vehicle_type="car").update(hourly_amount=1, daily_max_amount=1)

    seed()

    assert lot.spots.filter(vehicle_type="van").count() == 10
    assert lot.rates.get(vehicle_type="car").hourly_amount > 1


def test_demo_logins_work_and_have_the_right_roles():
    output = seed()

    driver = authenticate(HttpRequest(), username="driver@parkspot.test", password=DEMO_PASSWORD)
    staff = authenticate(HttpRequest(), username="staff@parkspot.test", password=DEMO_PASSWORD)
    admin = authenticate(HttpRequest(), username="admin@parkspot.test", password=DEMO_PASSWORD)
    assert driver is not None
    assert staff is not None
    assert admin is not None
    assert (driver.is_staff, driver.is_superuser) == (False, False)
    assert (staff.is_staff, staff.is_superuser) == (True, False)
    assert (admin.is_staff, admin.is_superuser) == (True, True)
    assert staff.groups.filter(name="Lot staff").exists()
    assert staff.has_perms(
        [
            "lots.view_lot",
            "lots.add_spot",
            "lots.change_rate",
            "reservations.change_reservation",
            "reservations.view_reservationevent",
            "lots.add_gatedevice",
            "lots.change_gatedevice",
            "payments.view_payment",
        ]
    )
    assert not staff.has_perm("lots.view_lotstaff")
    assert not staff.has_perm("reservations.change_reservationevent")
    assert not staff.has_perm("parking.view_user")

    assert "http://127.0.0.1:8000" in output
    for email in ("driver@parkspot.test", "staff@parkspot.test", "admin@parkspot.test"):
        assert email in output
    assert DEMO_PASSWORD in output
    for slug in Lot.objects.values_list("slug", flat=True):
        assert slug in output


def test_the_password_comes_from_demo_password(monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "another-demo-secret")
    seed()
    assert authenticate(
        HttpRequest(), username="driver@parkspot.test", password="another-demo-secret"
    )
    assert (
        authenticate(HttpRequest(), username="driver@parkspot.test", password=DEMO_PASSWORD) is None
    )


def test_the_staff_login_runs_its_one_lot_in_the_admin_and_sees_no_other():
    seed()
    client = Client()
    assert client.login(
        request=HttpRequest(), username="staff@parkspot.test", password=DEMO_PASSWORD
    )
    paris = Lot.objects.get(slug="paris-opera")
    tokyo = Lot.objects.get(slug="tokyo-shinjuku")
    staff = User.objects.get(email="staff@parkspot.test")
    assert list(LotStaff.objects.filter(user=staff).values_list("lot__slug", flat=True)) == [
        "paris-opera"
    ]

    for url in (
        "/admin/",
        "/admin/lots/lot/",
        "/admin/lots/spot/",
        "/admin/lots/rate/",
        "/admin/lots/gatedevice/",
        "/admin/lots/gatedevice/add/",
        "/admin/reservations/reservation/",
        "/admin/reservations/reservationevent/",
        "/admin/payments/payment/",
        f"/admin/lots/lot/{paris.pk}/change/",
        f"/admin/lots/lot/{paris.pk}/occupancy/",
        f"/admin/lots/lot/{paris.pk}/add-spots/",
    ):
        assert client.get(url).status_code == 200, url
    lots = client.get("/admin/lots/lot/").context["cl"].result_list
    assert [lot.slug for lot in lots] == ["paris-opera"]
    spots = client.get("/admin/lots/spot/", {"all": ""}).context["cl"]
    assert spots.result_count == 70  # 60 plain, 10 with features
    for url in (
        f"/admin/lots/lot/{tokyo.pk}/change/",
        f"/admin/lots/lot/{tokyo.pk}/occupancy/",
        f"/admin/lots/gatedevice/{GateDevice.objects.get(lot=tokyo).pk}/change/",
    ):
        assert client.get(url).status_code == 404, url
    assert client.get("/admin/parking/user/").status_code == 403
    assert client.get("/admin/lots/lot/add/").status_code == 403


def test_every_lot_gets_a_gate_whose_key_is_printed_once():
    first = seed()
    gates = GateDevice.objects.select_related("lot").order_by("lot__slug")
    assert [gate.lot.slug for gate in gates] == sorted(Lot.objects.values_list("slug", flat=True))
    keys = [line.split()[-1] for line in first.splitlines() if "Main entrance" in line]
    assert len(keys) == gates.count()
    assert sorted(hash_key(key) for key in keys) == sorted(gate.key_hash for gate in gates)

    again = seed()

    assert GateDevice.objects.count() == len(keys)
    for key, gate in zip(keys, gates, strict=True):
        assert key not in again
        assert f"{gate.key_prefix}…" in again
    assert "not shown again" in again
