"""Writes about lots: creating a lot, setting a rate, adding spots."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from config.errors import Conflict, InvalidInput
from lots.models import Lot, Rate, Spot
from lots.services import (
    lot_create,
    lot_staff_assign,
    rate_set,
    spot_return_to_service,
    spots_add,
)
from reservations.services import reservation_create
from tests.factories import LotFactory, SpotFactory

pytestmark = pytest.mark.django_db

LOT = {
    "slug": "lyon-part-dieu",
    "name": "Lyon Part-Dieu",
    "address": "5 Place Charles Béraudier",
    "city": "Lyon",
    "timezone": "Europe/Paris",
    "currency": "EUR",
}


def version(lot: Lot) -> int:
    return Lot.objects.values_list("availability_version", flat=True).get(pk=lot.pk)


# --- lot_create -----------------------------------------------------------------------


def test_lot_create_stores_a_valid_lot_with_lower_case_currency():
    lot = lot_create(
        **LOT, latitude=Decimal("45.760600"), longitude="4.859800", no_show_grace_minutes=30
    )

    lot.refresh_from_db()
    assert (lot.slug, lot.timezone, lot.currency) == ("lyon-part-dieu", "Europe/Paris", "eur")
    assert lot.latitude == Decimal("45.760600")
    assert lot.longitude == Decimal("4.859800")
    assert lot.no_show_grace_minutes == 30
    assert lot.is_active


@pytest.mark.parametrize(
    ("override", "code", "field"),
    [
        ({"timezone": "Europe/Lyon"}, "invalid_timezone", "timezone"),
        ({"timezone": ""}, "invalid_timezone", "timezone"),
        ({"currency": "euro"}, "invalid_currency", "currency"),
        ({"currency": "e1r"}, "invalid_currency", "currency"),
        ({"slug": "not a slug!"}, "invalid_slug", "slug"),
        ({"name": ""}, "invalid_name", "name"),
        ({"city": ""}, "invalid_city", "city"),
        ({"latitude": Decimal("91")}, "invalid_latitude", "latitude"),
        ({"longitude": Decimal("-180.5")}, "invalid_longitude", "longitude"),
        ({"no_show_grace_minutes": -5}, "invalid_no_show_grace_minutes", "no_show_grace_minutes"),
        ({"latitude": "north"}, "invalid_latitude", "latitude"),
    ],
)
def test_lot_create_rejects_bad_input_with_a_code(override, code, field):
    with pytest.raises(InvalidInput) as exc:
        lot_create(**{**LOT, **override})

    assert (exc.value.code, exc.value.field) == (code, field)
    assert exc.value.status == 400
    assert not Lot.objects.exists()


def test_lot_create_refuses_a_slug_that_is_taken():
    lot_create(**LOT)
    with pytest.raises(Conflict) as exc:
        lot_create(**{**LOT, "name": "Another"})
    assert exc.value.code == "slug_taken"
    assert Lot.objects.count() == 1


# --- rate_set -------------------------------------------------------------------------


def test_rate_set_creates_then_updates_the_one_rate_per_type():
    lot = LotFactory()
    before = version(lot)

    rate = rate_set(lot=lot, vehicle_type="car", hourly_amount=300, daily_max_amount=2400)
    assert (rate.hourly_amount, rate.daily_max_amount) == (300, 2400)
    assert version(lot) > before

    updated = rate_set(lot=lot, vehicle_type="car", hourly_amount=350, daily_max_amount=2400)
    assert updated.pk == rate.pk
    assert Rate.objects.get(pk=rate.pk).hourly_amount == 350
    assert Rate.objects.filter(lot=lot).count() == 1


def test_rate_set_with_the_same_amounts_writes_nothing():
    lot = LotFactory()
    rate_set(lot=lot, vehicle_type="van", hourly_amount=500, daily_max_amount=4000)
    before = version(lot)

    rate_set(lot=lot, vehicle_type="van", hourly_amount=500, daily_max_amount=4000)

    assert version(lot) == before  # cached availability answers stay valid


def test_rate_set_accepts_a_daily_max_equal_to_the_hourly_amount():
    lot = LotFactory()
    rate = rate_set(lot=lot, vehicle_type="motorcycle", hourly_amount=200, daily_max_amount=200)
    assert rate.daily_max_amount == 200


@pytest.mark.parametrize(
    ("vehicle_type", "hourly", "daily_max", "code"),
    [
        ("truck", 300, 2400, "invalid_vehicle_type"),
        ("car", 0, 2400, "invalid_hourly_amount"),
        ("car", -1, 2400, "invalid_hourly_amount"),
        ("car", 2.5, 2400, "invalid_hourly_amount"),
        ("car", 300, 0, "invalid_daily_max_amount"),
        ("car", 300, 299, "daily_max_below_hourly"),
    ],
)
def test_rate_set_rejects_bad_amounts_with_a_code(vehicle_type, hourly, daily_max, code):
    lot = LotFactory()
    with pytest.raises(InvalidInput) as exc:
        rate_set(
            lot=lot, vehicle_type=vehicle_type, hourly_amount=hourly, daily_max_amount=daily_max
        )
    assert exc.value.code == code
    assert not Rate.objects.exists()


def test_rate_set_rejects_an_update_that_breaks_the_rules_and_keeps_the_old_rate():
    lot = LotFactory()
    rate_set(lot=lot, vehicle_type="car", hourly_amount=300, daily_max_amount=2400)
    with pytest.raises(InvalidInput):
        rate_set(lot=lot, vehicle_type="car", hourly_amount=3000, daily_max_amount=2400)
    assert Rate.objects.get(lot=lot).hourly_amount == 300


# --- spots_add ------------------------------------------------------------------------


def test_spots_add_creates_numbered_spots_and_bumps_the_version_once():
    lot = LotFactory()
    before = version(lot)

    spots = spots_add(lot=lot, vehicle_type="car", count=3, prefix="C")

    assert [spot.label for spot in spots] == ["C-001", "C-002", "C-003"]
    assert all(spot.pk for spot in spots)
    stored = Spot.objects.filter(lot=lot).order_by("label")
    assert list(stored.values_list("label", "vehicle_type", "is_active")) == [
        ("C-001", "car", True),
        ("C-002", "car", True),
        ("C-003", "car", True),
    ]
    assert len({spot.public_id for spot in stored}) == 3
    # One bump for the whole batch (bulk_create sends no post_save signals).
    assert version(lot) == before + 1


def test_spots_add_continues_after_the_highest_number_of_that_prefix():
    lot = LotFactory()
    SpotFactory(lot=lot, label="C-007", vehicle_type="car")
    SpotFactory(lot=lot, label="C-002", vehicle_type="car")
    SpotFactory(lot=lot, label="M-050", vehicle_type="motorcycle")
    SpotFactory(lot=lot, label="C-ROOF", vehicle_type="car")  # not numbered: ignored
    other = LotFactory()
    SpotFactory(lot=other, label="C-099", vehicle_type="car")  # another lot's numbers

    spots = spots_add(lot=lot, vehicle_type="car", count=2, prefix="c")

    assert [spot.label for spot in spots] == ["C-008", "C-009"]


def test_spots_add_numbers_past_999_with_more_digits():
    lot = LotFactory()
    SpotFactory(lot=lot, label="V-998", vehicle_type="van")
    spots = spots_add(lot=lot, vehicle_type="van", count=3, prefix="V")
    assert [spot.label for spot in spots] == ["V-999", "V-1000", "V-1001"]


@pytest.mark.parametrize(
    ("vehicle_type", "count", "prefix", "code"),
    [
        ("bus", 1, "B", "invalid_vehicle_type"),
        ("car", 0, "C", "invalid_count"),
        ("car", -3, "C", "invalid_count"),
        ("car", 1001, "C", "invalid_count"),
        ("car", 2, "", "invalid_prefix"),
        ("car", 2, "C-", "invalid_prefix"),
        ("car", 2, "ABCDEFGHIJK", "invalid_prefix"),
    ],
)
def test_spots_add_rejects_bad_input_with_a_code(vehicle_type, count, prefix, code):
    lot = LotFactory()
    with pytest.raises(InvalidInput) as exc:
        spots_add(lot=lot, vehicle_type=vehicle_type, count=count, prefix=prefix)
    assert exc.value.code == code
    assert not Spot.objects.exists()


def test_added_spots_are_bookable(driver):
    lot = LotFactory()
    rate_set(lot=lot, vehicle_type="car", hourly_amount=300, daily_max_amount=2400)
    spots_add(lot=lot, vehicle_type="car", count=1, prefix="C")
    start = timezone.now() + timedelta(hours=1)

    result = reservation_create(
        user=driver,
        lot_id=lot.slug,
        vehicle_type="car",
        start=start,
        end=start + timedelta(hours=2),
    )

    assert result.reservation.spot.label == "C-001"
    assert result.reservation.price_amount == 600


def test_a_spot_put_back_in_service_is_offered_again_at_once(lot):
    spot = lot.spots.first()
    spot.is_active = False
    spot.save()
    version = Lot.objects.get(pk=lot.pk).availability_version

    assert spot_return_to_service(spot_id=spot.pk) is True
    assert spot_return_to_service(spot_id=spot.pk) is False
    spot.refresh_from_db()
    assert spot.is_active
    assert Lot.objects.get(pk=lot.pk).availability_version == version + 1


def test_only_staff_users_can_be_assigned_to_run_a_lot(lot, driver):
    with pytest.raises(InvalidInput) as exc:
        lot_staff_assign(lot=lot, user=driver)
    assert exc.value.code == "not_staff"
    driver.is_staff = True
    driver.save()
    first = lot_staff_assign(lot=lot, user=driver)
    assert lot_staff_assign(lot=lot, user=driver) == first
