"""Partner webhooks in the admin, scoped by lot: staff of lot A register and
see A's endpoints and delivery log only; lot B's are 404 by URL, unpickable in
forms and untouchable through actions. Superusers see both."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from lots.models import LotStaff
from lots.webhooks.models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint
from lots.webhooks.services import webhook_endpoint_create
from parking.management.commands.seed_demo import STAFF_PERMISSIONS
from parking.models import User
from parking.services import group_ensure
from tests.factories import LotFactory, UserFactory

pytestmark = pytest.mark.django_db

ENDPOINTS = reverse("admin:lots_webhookendpoint_changelist")
DELIVERIES = reverse("admin:lots_webhookdelivery_changelist")


def delivery_for(endpoint: WebhookEndpoint, event_id: str) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_id=event_id,
        event_type="reservation.created",
        payload={"id": event_id, "type": "reservation.created"},
        status=WebhookDelivery.State.FAILED,
        attempts=8,
        last_response_code=500,
    )


@pytest.fixture
def world(db):
    lot_a = LotFactory(slug="paris", name="Paris")
    lot_b = LotFactory(slug="tokyo", name="Tokyo")
    hook_a = webhook_endpoint_create(
        lot=lot_a, url="https://partner-a.example/hooks", event_types=list(EVENT_TYPES)
    )
    hook_b = webhook_endpoint_create(
        lot=lot_b, url="https://partner-b.example/hooks", event_types=list(EVENT_TYPES)
    )
    staff = UserFactory(email="staff.a@example.com", is_staff=True)
    staff.groups.add(group_ensure(name="Lot staff", permissions=STAFF_PERMISSIONS))
    LotStaff.objects.create(lot=lot_a, user=staff)
    return {
        "a": lot_a,
        "b": lot_b,
        "hook_a": hook_a,
        "hook_b": hook_b,
        "delivery_a": delivery_for(hook_a, "evt_aaaaaaaaaaaa"),
        "delivery_b": delivery_for(hook_b, "evt_bbbbbbbbbbbb"),
        "staff": staff,
        "boss": User.objects.create_superuser(email="boss@example.com", password="x-secret-pw"),
    }


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_a(world) -> Client:
    return client_for(world["staff"])


@pytest.fixture
def boss(world) -> Client:
    return client_for(world["boss"])


def test_staff_list_only_their_lots_endpoints_and_deliveries(world, staff_a, boss):
    endpoints = staff_a.get(ENDPOINTS).content.decode()
    assert "partner-a.example" in endpoints
    assert "partner-b.example" not in endpoints
    log = staff_a.get(DELIVERIES).content.decode()
    assert "evt_aaaaaaaaaaaa" in log
    assert "evt_bbbbbbbbbbbb" not in log
    # Not even by filtering on the other lot's endpoint or searching its event.
    filtered = staff_a.get(DELIVERIES, {"endpoint__id__exact": world["hook_b"].pk})
    assert "evt_bbbbbbbbbbbb" not in filtered.content.decode()
    assert "evt_bbbbbbbbbbbb" not in staff_a.get(DELIVERIES, {"q": "evt_b"}).content.decode()

    assert "partner-b.example" in boss.get(ENDPOINTS).content.decode()
    assert "evt_bbbbbbbbbbbb" in boss.get(DELIVERIES).content.decode()


@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_another_lots_endpoint_and_delivery_are_not_found_by_url(world, staff_a, boss, view):
    for kind, model in (("hook", "webhookendpoint"), ("delivery", "webhookdelivery")):
        mine, theirs = world[f"{kind}_a"], world[f"{kind}_b"]
        url = f"admin:lots_{model}_{view}"
        assert staff_a.get(reverse(url, args=[theirs.pk])).status_code == 404, url
        assert staff_a.get(reverse(f"admin:lots_{model}_change", args=[mine.pk])).status_code == 200
        assert boss.get(reverse(f"admin:lots_{model}_change", args=[theirs.pk])).status_code == 200


def test_posting_to_another_lots_endpoint_changes_nothing(world, staff_a):
    hook_b = world["hook_b"]
    response = staff_a.post(
        reverse("admin:lots_webhookendpoint_change", args=[hook_b.pk]),
        {"url": "https://attacker.example/steal", "event_types": list(EVENT_TYPES)},
    )
    assert response.status_code == 404
    hook_b.refresh_from_db()
    assert hook_b.url == "https://partner-b.example/hooks"


def test_the_secret_is_shown_on_the_endpoints_own_page_only(world, staff_a):
    page = staff_a.get(reverse("admin:lots_webhookendpoint_change", args=[world["hook_a"].pk]))
    assert world["hook_a"].secret in page.content.decode()
    assert world["hook_b"].secret not in staff_a.get(ENDPOINTS).content.decode()


def test_staff_register_an_endpoint_for_their_lot_only(world, staff_a):
    add = reverse("admin:lots_webhookendpoint_add")
    form = staff_a.get(add)
    assert form.status_code == 200
    lots = form.context["adminform"].form.fields["lot"].queryset
    assert list(lots) == [world["a"]]

    refused = staff_a.post(
        add, {"lot": world["b"].pk, "url": "https://new.example/h", "event_types": EVENT_TYPES}
    )
    assert refused.status_code == 200
    assert "lot" in refused.context["adminform"].form.errors
    not_https = staff_a.post(
        add, {"lot": world["a"].pk, "url": "http://new.example/h", "event_types": EVENT_TYPES}
    )
    assert "HTTPS" in str(not_https.context["adminform"].form.errors["url"])
    taken = staff_a.post(
        add,
        {
            "lot": world["a"].pk,
            "url": "https://partner-a.example/hooks",
            "event_types": EVENT_TYPES,
        },
    )
    assert "already has an endpoint" in str(taken.context["adminform"].form.errors["url"])
    assert WebhookEndpoint.objects.filter(url__contains="new.example").count() == 0

    made = staff_a.post(
        add,
        {
            "lot": world["a"].pk,
            "url": "https://new.example/h",
            "description": "Partner",
            "event_types": ["reservation.confirmed", "reservation.cancelled"],
            "is_active": "on",
        },
    )
    assert made.status_code == 302
    endpoint = WebhookEndpoint.objects.get(url="https://new.example/h")
    assert endpoint.lot == world["a"]
    assert endpoint.event_types == ["reservation.confirmed", "reservation.cancelled"]
    assert endpoint.secret.startswith("whsec_")


def test_staff_cannot_delete_endpoints(world, staff_a):
    url = reverse("admin:lots_webhookendpoint_delete", args=[world["hook_a"].pk])
    assert staff_a.get(url).status_code == 403


def test_actions_on_another_lots_rows_do_nothing(world, staff_a):
    hook_b, delivery_b = world["hook_b"], world["delivery_b"]
    staff_a.post(
        ENDPOINTS, {"action": "send_test_event", "_selected_action": [hook_b.pk]}, follow=True
    )
    staff_a.post(ENDPOINTS, {"action": "rotate_secret", "_selected_action": [hook_b.pk]})
    staff_a.post(DELIVERIES, {"action": "retry_now", "_selected_action": [delivery_b.pk]})

    assert hook_b.deliveries.count() == 1
    assert WebhookEndpoint.objects.get(pk=hook_b.pk).secret == hook_b.secret
    delivery_b.refresh_from_db()
    assert delivery_b.status == "failed"


def test_staff_retry_a_failed_delivery_and_send_a_test_event(world, staff_a):
    hook_a, delivery_a = world["hook_a"], world["delivery_a"]
    staff_a.post(DELIVERIES, {"action": "retry_now", "_selected_action": [delivery_a.pk]})
    delivery_a.refresh_from_db()
    assert delivery_a.status == "pending"

    staff_a.post(ENDPOINTS, {"action": "send_test_event", "_selected_action": [hook_a.pk]})
    assert hook_a.deliveries.filter(event_type="webhook.test").count() == 1


def test_the_delivery_log_is_read_only(world, staff_a):
    delivery = world["delivery_a"]
    assert staff_a.get(reverse("admin:lots_webhookdelivery_add")).status_code == 403
    staff_a.post(
        reverse("admin:lots_webhookdelivery_change", args=[delivery.pk]), {"status": "delivered"}
    )
    delivery.refresh_from_db()
    assert delivery.status == "failed"
