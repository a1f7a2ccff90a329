"""A staff member of one lot adds a weekday-peak rate in a real browser: they
preview a Monday morning's price as the rules are saved and with the new rule,
line by line, then save it; nothing of another lot shows, and the preview
passes axe-core. Screenshot in test-artifacts/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lots.models import RateRule
from tests.e2e.conftest import screenshot
from tests.e2e.staff import admin_log_in, paris_and_tokyo, staff_member_of

pytestmark = pytest.mark.django_db(transaction=True)

AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"


@pytest.fixture
def staffed_lot(db):
    lot, _ = paris_and_tokyo(car_spots=4)
    staff_member_of(lot)
    return lot


def test_staff_preview_and_save_a_weekday_peak(live_server, page, staffed_lot):
    admin_log_in(page, live_server.url)

    page.goto(f"{live_server.url}/admin/lots/lot/{staffed_lot.pk}/change/")
    page.get_by_role("link", name="Flex rates").first.click()
    page.get_by_role("link", name="Add rate rule").click()
    page.wait_for_url("**/admin/lots/raterule/add/**")

    page.fill("#id_name", "weekday peak")
    page.fill("#id_start_time", "07:00")
    page.fill("#id_end_time", "10:00")
    page.fill("#id_hourly_amount", "400")
    # Monday 1 March 2027, 06:00-11:00 in Paris: 07, 08 and 09 start in the peak.
    page.fill("#id_preview_start", "2027-03-01T06:00")
    page.fill("#id_preview_end", "2027-03-01T11:00")
    page.get_by_role("button", name="Preview price").click()

    preview = page.locator("#price-preview")
    preview.wait_for()
    assert preview.get_by_test_id("saved-price").inner_text() == "€17.50"
    assert preview.get_by_test_id("draft-price").inner_text() == "€19.00"
    text = preview.inner_text()
    assert "3 h × €4.00 (weekday peak) = €12.00" in text
    assert "2 h × €3.50 (base rate) = €7.00" in text
    assert "Tokyo" not in page.content()
    assert not RateRule.objects.exists()  # a preview saves nothing
    preview.scroll_into_view_if_needed()
    screenshot(page, "flex-rates-preview")

    page.evaluate(AXE.read_text())
    result = page.evaluate(
        "async () => await axe.run('#price-preview', {resultTypes: ['violations']})"
    )
    serious = [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], json.dumps(serious, indent=2)

    page.locator("input[name=_save]").click()
    page.wait_for_url("**/admin/lots/raterule/**")
    assert page.get_by_role("link", name="weekday peak", exact=True).is_visible()
    rule = RateRule.objects.get()
    assert (rule.lot_id, rule.weekday_list, rule.hourly_amount) == (
        staffed_lot.pk,
        [0, 1, 2, 3, 4],
        400,
    )
    screenshot(page, "flex-rates-saved")
