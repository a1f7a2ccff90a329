"""The browser set-up itself works: the home page renders in headless Chromium."""

import pytest

from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_home_page_renders_in_a_real_browser(live_server, page, lot):
    page.goto(live_server.url + "/")
    assert "ParkSpot" in page.title()
    assert page.get_by_role("heading", name="Reserve a parking spot").is_visible()
    assert screenshot(page, "home").stat().st_size > 0
