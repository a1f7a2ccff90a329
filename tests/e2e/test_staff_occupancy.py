"""A lot's staff member logs into the admin in a real browser and opens the
lot's occupancy view: the server-drawn timeline is there, and nothing of
another lot is."""

from datetime import timedelta

import pytest
from django.utils import timezone

from lots.services import spots_add
from reservations.models import Reservation, Status
from tests.e2e.conftest import screenshot
from tests.e2e.staff import admin_log_in, paris_and_tokyo, staff_member_of
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staffed_lot(db):
    lot, other = paris_and_tokyo(car_spots=None)
    spots = spots_add(lot=lot, vehicle_type="car", count=12, prefix="C")
    spots_add(lot=lot, vehicle_type="van", count=3, prefix="V")
    spots_add(lot=other, vehicle_type="car", count=4, prefix="C")

    driver = UserFactory(email="driver@example.com")
    now = timezone.now()
    local_midnight = now.astimezone(lot.tz).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = []
    for n, spot in enumerate(spots):
        start = local_midnight + timedelta(hours=6 + n % 9)
        end = start + timedelta(hours=2 + n % 4)
        status = Status.COMPLETED if end <= now else Status.CONFIRMED
        arrived = start + timedelta(minutes=10) if status == Status.COMPLETED else None
        rows.append(
            Reservation(
                user=driver,
                lot=lot,
                spot=spot,
                vehicle_type="car",
                vehicle_plate=f"AB{n:03}CD",
                start=start,
                end=end,
                occupied_until=end,
                status=status,
                price_amount=700,
                currency="eur",
                arrived_at=arrived,
                departed_at=end if arrived else None,
            )
        )
    Reservation.objects.bulk_create(rows)

    staff_member_of(lot)
    return lot


def test_staff_log_in_and_see_their_lots_occupancy(live_server, page, staffed_lot):
    admin_log_in(page, live_server.url)

    page.goto(live_server.url + "/admin/lots/lot/")
    assert "Tokyo" not in page.content()
    page.get_by_role("link", name="Occupancy").click()
    page.wait_for_url(f"**/admin/lots/lot/{staffed_lot.pk}/occupancy/")

    chart = page.locator("svg.occupancy-chart")
    assert chart.is_visible()
    assert chart.locator("rect.bar-booked[data-code]").count() >= 12
    box = chart.bounding_box()
    assert box["width"] > 600
    assert box["height"] > 15 * 11  # a row per spot
    assert page.get_by_role("heading", name="Arrivals").is_visible()
    assert page.locator("#arrivals tbody tr").count() == 12
    assert "Europe/Paris" in page.content()

    # The next day is one click away, and empty.
    page.locator("a[rel=next]").click()
    page.wait_for_url("**/occupancy/?day=*")
    assert page.locator("svg.occupancy-chart rect.bar-booked[data-code]").count() == 0
    page.go_back()

    assert screenshot(page, "staff-occupancy").stat().st_size > 10_000
