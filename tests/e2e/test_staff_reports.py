"""A lot's staff member, in a real browser: opens the reports of their lot,
switches the period, downloads the CSV, then opens what needs attention and
marks an overstaying car as gone (its settlement is then listed, Stripe not
being run here). Nothing of another lot shows; axe-core finds
no serious issue; screenshots go to test-artifacts/."""

import pytest
from django.utils import timezone

from lots.services import rate_set, spots_add
from reservations.models import Reservation, Status
from reservations.services.demo import demo_bookings_ensure, demo_drivers_ensure
from tests.e2e.conftest import screenshot
from tests.e2e.staff import admin_log_in, assert_accessible, staff_member_of
from tests.factories import LotFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staffed_lot(db):
    """Paris with a past and a coming week of bookings (as seed_demo makes
    them), Tokyo likewise; a staff member of Paris only."""
    lot = LotFactory(
        slug="paris-opera", name="Paris Opéra", timezone="Europe/Paris", currency="eur"
    )
    other = LotFactory(slug="tokyo", name="Tokyo Shinjuku", timezone="Asia/Tokyo", currency="jpy")
    rate_set(lot=lot, vehicle_type="car", hourly_amount=350, daily_max_amount=2800)
    rate_set(lot=other, vehicle_type="car", hourly_amount=600, daily_max_amount=3000)
    spots_add(lot=lot, vehicle_type="car", count=16, prefix="C")
    spots_add(lot=other, vehicle_type="car", count=12, prefix="C")
    drivers = demo_drivers_ensure()
    for each in (lot, other):
        demo_bookings_ensure(lot=each, drivers=drivers, now=timezone.now(), seed=15)
    staff_member_of(lot)
    return lot


def test_staff_read_their_lots_reports_and_resolve_what_needs_attention(
    live_server, page, staffed_lot
):
    lot = staffed_lot
    admin_log_in(page, live_server.url)

    # The lot's page links to its report.
    page.goto(f"{live_server.url}/admin/lots/lot/{lot.pk}/change/")
    page.get_by_role("link", name="Report", exact=True).click()
    page.wait_for_url(f"**/admin/lots/lot/{lot.pk}/report/")
    assert page.locator("svg.heatmap").is_visible()
    assert page.locator("svg.heatmap rect[class^=heat-]").count() >= 7 * 24
    assert page.locator("svg.revenue").is_visible()
    assert "Tokyo" not in page.content()
    week_bookings = int(page.locator("strong.bookings").inner_text())
    assert week_bookings > 20

    # A longer period: more bookings, and the CSV follows the period.
    page.get_by_role("link", name="Last 30 days").click()
    page.wait_for_url("**/report/?period=last30")
    assert int(page.locator("strong.bookings").inner_text()) >= week_bookings
    csv_link = page.locator("#csv-export")
    assert csv_link.get_attribute("href") == "?period=last30&export=csv"
    download = page.request.get(page.url.split("?")[0] + csv_link.get_attribute("href"))
    assert download.status == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert download.text().splitlines()[1].startswith("paris-opera,")
    assert_accessible(page, "report")
    assert screenshot(page, "staff-report").stat().st_size > 10_000

    # What needs attention: linked from the lot's page with its count.
    page.goto(f"{live_server.url}/admin/lots/lot/{lot.pk}/change/")
    page.get_by_role("link", name="Needs attention (4)").click()
    page.wait_for_url(f"**/admin/lots/lot/{lot.pk}/attention/")
    assert page.locator("#overstayers tbody tr").count() == 2
    assert page.locator("#settlements tbody tr").count() == 1
    assert page.locator("#displaced tbody tr").count() == 1
    assert_accessible(page, "needs attention")
    assert screenshot(page, "staff-needs-attention").stat().st_size > 10_000

    # The first overstayer's car is gone: mark it left.
    code = page.locator("#overstayers tbody tr").first.locator("td").first.inner_text()
    page.get_by_role("button", name=f"Mark left now ({code})").click()
    page.wait_for_load_state()
    assert f"{code}: marked left now" in page.locator(".messagelist").inner_text()
    assert page.locator("#overstayers tbody tr").count() == 1
    assert Reservation.objects.get(code=code).status == Status.COMPLETED
    # Its charge is now settled with Stripe, which this test does not run (and
    # the demo's payments are not at Stripe): the settlement is listed to follow up.
    assert code in page.locator("#settlements").inner_text()
