"""The Grafana dashboard (deploy/grafana/parkspot.json) asks only for metrics
that /metrics has, once the app has done a little of everything."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from lots.services import gate_create
from tests.factories import UserFactory
from tests.metrics_support import scrape

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "parkspot.json"

_NAME = re.compile(r"\b((?:parkspot|django)_[a-zA-Z0-9_]+)")
_SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def _family_name(sample_name: str) -> str:
    for suffix in _SUFFIXES:
        if sample_name.endswith(suffix):
            return sample_name[: -len(suffix)]
    return sample_name


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append(target["expr"])
    return queries


@pytest.mark.django_db(transaction=True)
def test_every_metric_the_dashboard_asks_for_is_in_metrics(stripe, lot):
    # Exercise the app a little: a search, a booking paid for, a car in and out,
    # a refused booking, and the scheduler's jobs once.
    from reservations.services import holds_expire_lapsed, reservations_settle_pending

    driver = UserFactory()
    client = APIClient()
    client.force_authenticate(driver)
    start = timezone.now() + timedelta(minutes=5)
    window = {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}
    APIClient().get(f"/api/v1/lots/{lot.slug}/availability", {"vehicle_type": "car", **window})
    booked = client.post(
        "/api/v1/reservations",
        {"lot_id": lot.slug, "vehicle_type": "car", **window},
        format="json",
    )
    assert booked.status_code == 201, booked.content
    code = booked.json()["id"]
    paid = client.post(
        f"/api/v1/reservations/{code}/complete", {"payment_token": stripe.card()}, format="json"
    )
    assert paid.status_code == 200, paid.content
    refused = client.post(
        "/api/v1/reservations",
        {"lot_id": "nowhere", "vehicle_type": "car", **window},
        format="json",
    )
    assert refused.status_code == 404
    _, key = gate_create(lot=lot, name="North")
    gate = APIClient()
    gate.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    arrived = gate.post(
        "/api/v1/gate/arrivals",
        {"reservation_id": code, "time": timezone.now().isoformat()},
        format="json",
    )
    assert arrived.status_code == 200, arrived.content
    left = gate.post(
        "/api/v1/gate/departures",
        {"reservation_id": code, "time": timezone.now().isoformat()},
        format="json",
    )
    assert left.status_code == 200, left.content
    from reservations.tasks import expire_lapsed_holds

    expire_lapsed_holds.delay()
    holds_expire_lapsed()
    reservations_settle_pending()

    available = {_family_name(family) for family in scrape().families}
    wanted: set[str] = set()
    queries = _dashboard_queries()
    assert queries, "the dashboard has no queries"
    for expr in queries:
        wanted |= {_family_name(name) for name in _NAME.findall(expr)}
    missing = sorted(wanted - available)
    assert not missing, f"the dashboard asks for metrics /metrics does not have: {missing}"
    # And it shows what the operator was promised.
    for promised in (
        "django_http_requests_latency_seconds_by_view_method",
        "django_db_query_duration_seconds",
        "parkspot_bookings_made",
        "parkspot_bookings_refused",
        "parkspot_holds_open",
        "parkspot_arrivals",
        "parkspot_departures",
        "parkspot_captured_minor_units",
        "parkspot_refunded_minor_units",
        "parkspot_payment_operations",
        "parkspot_settlements_needing_attention",
        "parkspot_sweep_age_seconds",
    ):
        assert promised in wanted, f"the dashboard does not show {promised}"
