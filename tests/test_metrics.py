"""/metrics: Prometheus's text format, for the addresses and token the settings
allow and nobody else; requests, queries and cache calls timed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from reservations.selectors import forget_kept_answers
from tests.metrics_support import Deltas

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "parkspot.json"

pytestmark = pytest.mark.django_db


def test_metrics_answer_in_prometheus_text_format_from_loopback():
    response = Client().get("/metrics")  # the test client's address is 127.0.0.1

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"]
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {"parkspot_bookings_made", "parkspot_holds_open", "parkspot_facts_up"} <= names


def test_metrics_answer_over_ipv6_loopback():
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200


def test_metrics_are_refused_from_another_address_with_a_bare_403():
    response = Client(REMOTE_ADDR="203.0.113.9").get("/metrics")

    assert response.status_code == 403
    assert response.content == b""


def test_metrics_are_refused_without_the_token_when_one_is_set(settings):
    settings.METRICS_TOKEN = "s3cret-scraper-token"
    client = Client()

    assert client.get("/metrics").status_code == 403
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer guess")
    assert (wrong.status_code, wrong.content) == (403, b"")
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scraper-token")
    assert right.status_code == 200
    # The token does not open the door to an address that is not allowed.
    outside = Client(REMOTE_ADDR="203.0.113.9")
    assert (
        outside.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scraper-token").status_code == 403
    )


def test_with_no_address_listed_the_token_alone_lets_a_scraper_in_from_anywhere(settings):
    settings.METRICS_ALLOWED_IPS = []
    settings.METRICS_TOKEN = "s3cret-scraper-token"
    outside = Client(REMOTE_ADDR="203.0.113.9")

    assert outside.get("/metrics").status_code == 403
    ok = outside.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scraper-token")
    assert ok.status_code == 200


def test_with_neither_an_address_nor_a_token_nobody_reads_metrics(settings):
    settings.METRICS_ALLOWED_IPS = []
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 403


def test_a_network_in_the_allowed_list_lets_its_addresses_in(settings):
    settings.METRICS_ALLOWED_IPS = ["10.20.0.0/16"]

    assert Client(REMOTE_ADDR="10.20.3.4").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.21.3.4").get("/metrics").status_code == 403
    assert Client().get("/metrics").status_code == 403  # loopback is no longer listed


def test_behind_a_trusted_proxy_the_client_address_is_the_one_checked(settings):
    settings.TRUSTED_PROXIES = 1
    proxy = Client(REMOTE_ADDR="127.0.0.1")  # the proxy itself is on loopback

    refused = proxy.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    allowed = proxy.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert (refused.status_code, allowed.status_code) == (403, 200)


def test_only_get_and_head_are_answered():
    assert Client().post("/metrics").status_code == 405
    assert Client().head("/metrics").status_code == 200


def test_a_bad_allowed_address_refuses_to_start_and_names_the_variable():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "METRICS_ALLOWED_IPS": "127.0.0.1,my-laptop"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "METRICS_ALLOWED_IPS must list addresses or networks" in result.stderr
    assert "'my-laptop'" in result.stderr


def test_requests_are_timed_by_view_and_counted_by_status(lot):
    moved = Deltas()
    assert Client().get("/api/v1/lots").status_code == 200
    assert Client().get("/api/v1/lots/nowhere").status_code == 404

    latency = "django_http_requests_latency_seconds_by_view_method_count"
    assert moved(latency, view="api:lot-list", method="GET") == 1
    statuses = "django_http_responses_total_by_status_view_method_total"
    assert moved(statuses, view="api:lot-detail", status="404") == 1


def test_database_queries_and_cache_calls_are_timed(lot):
    start = timezone.now() + timedelta(days=2)
    query = {
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
    }
    moved = Deltas()
    for _ in range(2):  # the second is answered from the answer this process kept
        response = APIClient().get(f"/api/v1/lots/{lot.slug}/availability", query)
        assert response.status_code == 200
    forget_kept_answers()  # as another worker would: from the shared cache
    assert APIClient().get(f"/api/v1/lots/{lot.slug}/availability", query).status_code == 200

    assert moved("django_db_query_duration_seconds_count") >= 2
    assert moved("django_db_execute_total") >= 2
    assert moved("parkspot_cache_operation_seconds_count", operation="get") == 2
    assert moved("parkspot_cache_operation_seconds_count", operation="set") == 1
    assert moved("parkspot_cache_gets_total", result="miss") == 1
    assert moved("parkspot_cache_gets_total", result="hit") == 2  # kept, then shared


def test_a_cached_zero_is_a_hit_not_the_default():
    from django.core.cache import cache

    cache.set("metrics-zero", 0)
    assert cache.get("metrics-zero", "default") == 0
    assert cache.get("metrics-missing", "default") == "default"


def test_check_deploy_warns_when_metrics_answer_every_address_without_a_token(settings):
    from config.checks import metrics_open_to_all

    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1", "0.0.0.0/0"]
    assert [w.id for w in metrics_open_to_all(None)] == ["parkspot.W010"]
    settings.METRICS_TOKEN = "s3cret-scraper-token"
    assert metrics_open_to_all(None) == []
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert metrics_open_to_all(None) == []
