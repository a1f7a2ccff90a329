"""A lot's staff member closes a spot for tomorrow morning in a real browser:
the booking that was on it is moved to another spot, and the closure's page
says so, with a link to that booking; another lot is nowhere to be seen."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reservations.models import Closure, Reservation, Status
from tests.e2e.conftest import screenshot
from tests.e2e.staff import admin_log_in, paris_and_tokyo, staff_member_of
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staffed_lot(db):
    lot, _ = paris_and_tokyo(car_spots=3)
    staff_member_of(lot)
    return lot


def test_staff_close_a_spot_and_see_the_booking_on_it_moved(live_server, page, staffed_lot):
    lot = staffed_lot
    tomorrow = (timezone.now().astimezone(lot.tz) + timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    booking = Reservation.objects.create(
        user=UserFactory(email="driver@example.com"),
        lot=lot,
        spot=lot.spots.get(label="C-001"),
        vehicle_type="car",
        start=tomorrow,
        end=tomorrow + timedelta(hours=2),
        occupied_until=tomorrow + timedelta(hours=2),
        status=Status.CONFIRMED,
        price_amount=700,
        currency="eur",
    )

    admin_log_in(page, live_server.url)

    page.goto(live_server.url + "/admin/reservations/closure/")
    page.get_by_role("link", name="Add closure").click()
    page.wait_for_url("**/admin/reservations/closure/add/")
    assert "Tokyo" not in page.content()
    page.select_option("#id_spots", label="Paris Opéra: C-001 (Car)")
    page.fill("#id_starts_at", f"{tomorrow:%Y-%m-%d}T08:00")
    page.fill("#id_ends_at", f"{tomorrow:%Y-%m-%d}T12:00")
    page.fill("#id_reason", "Line painting")
    page.get_by_role("button", name="Close and deal with the bookings in the way").click()
    page.wait_for_url("**/admin/reservations/closure/*/change/")

    message = page.locator("ul.messagelist li").first
    assert "Bookings in its way: moved 1, cancelled 0, parked 0" in message.inner_text()
    impacts = page.locator("#closure-impacts")
    assert impacts.is_visible()
    row = impacts.locator("tbody tr").first
    assert "Moved to another spot" in row.inner_text()
    assert "C-001" in row.inner_text()
    assert "C-002" in row.inner_text()
    screenshot(page, "staff-closure-outcome")

    row.get_by_role("link", name=booking.code).click()
    page.wait_for_url(f"**/admin/reservations/reservation/{booking.pk}/change/")
    closure = Closure.objects.get()
    assert (closure.starts_at.astimezone(lot.tz).hour, closure.whole_lot) == (8, False)
    booking.refresh_from_db()
    assert booking.spot.label == "C-002"
