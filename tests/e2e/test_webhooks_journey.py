"""A lot's staff member registers a partner webhook endpoint in the admin in a
real browser, reads its signing secret, and sees the delivery log fill once a
booking is made and the worker's services have sent it to a real receiver."""

from __future__ import annotations

import pytest

from lots.webhooks.models import WebhookEndpoint
from lots.webhooks.services import deliveries_send_due
from reservations.services.webhooks import webhook_events_dispatch
from tests.e2e.conftest import screenshot
from tests.e2e.staff import admin_log_in, paris_and_tokyo, staff_member_of
from tests.factories import UserFactory
from tests.lots.webhook_receiver import Receiver, signature_is_valid
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staffed_lot(db):
    lot, _ = paris_and_tokyo(car_spots=3)
    staff_member_of(lot)
    return lot


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_LOOPBACK_HTTP = True
    with Receiver() as running:
        yield running


def test_staff_register_an_endpoint_and_see_its_delivery_log(
    live_server, page, staffed_lot, receiver
):
    admin_log_in(page, live_server.url)

    page.get_by_role("link", name="Webhook endpoints").click()
    page.wait_for_url("**/admin/lots/webhookendpoint/")
    page.get_by_role("link", name="Add webhook endpoint").click()
    page.wait_for_url("**/admin/lots/webhookendpoint/add/")
    # Their one lot is chosen already, and every event type is ticked.
    assert page.locator("#id_lot option:checked").inner_text() == "Paris Opéra"
    assert "Tokyo" not in page.locator("#id_lot").inner_text()
    assert page.locator("input[name=event_types]:checked").count() == 6
    page.fill("#id_url", receiver.url)
    page.fill("#id_description", "ParkWhiz (test)")
    page.click("input[name=_continue]")  # save and continue editing

    page.wait_for_url("**/admin/lots/webhookendpoint/*/change/")
    endpoint = WebhookEndpoint.objects.get(lot=staffed_lot)
    secret = page.locator(".field-signing_secret code").inner_text()
    assert secret == endpoint.secret

    # A driver books; the worker's jobs read the event and send it.
    reservation = book(UserFactory(email="driver@example.com"), staffed_lot)
    assert webhook_events_dispatch() == 1
    assert deliveries_send_due() == 1
    [request] = receiver.received
    assert signature_is_valid(secret, request.headers["ParkSpot-Signature"], request.body)

    page.get_by_role("link", name="Deliveries", exact=True).click()
    page.wait_for_url("**/admin/lots/webhookdelivery/?endpoint__id__exact=*")
    row = page.locator("#result_list tbody tr").first
    assert "reservation.created" in row.inner_text()
    assert "Delivered" in row.inner_text()
    assert page.locator("#result_list tbody tr").count() == 1

    row.locator("th a").click()  # the delivery, with what was sent
    page.wait_for_url("**/admin/lots/webhookdelivery/*/change/**")
    assert reservation.code in page.locator(".field-payload_json pre").inner_text()
    page.go_back()

    assert screenshot(page, "staff-webhook-deliveries").stat().st_size > 10_000
