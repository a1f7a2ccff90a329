"""Logs an operator reads: one JSON line per request and per state change, each
carrying the request id that the response names (config/logs.py,
config/request_log.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.http import HttpRequest
from django.test import Client
from django.urls import include, path
from django.utils import timezone

from lots.services import gate_create
from reservations.services import reservation_confirm
from tests.reservations.helpers import book
from tests.system.processes import database_url

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]
GENERATED = re.compile(r"[0-9a-f]{32}")


def _boom(request: HttpRequest):
    raise RuntimeError("the view broke")


# For the 500 test: every real route, and one that breaks.
urlpatterns = [path("boom", _boom), path("", include("config.urls"))]


def _request_line(log_lines) -> dict:
    lines = log_lines.events("request")
    assert len(lines) == 1, log_lines.text
    return lines[0]


# --- the request line ----------------------------------------------------------------------


def test_a_request_logs_one_json_line_with_the_id_it_answers_with(driver_api, driver, log_lines):
    response = driver_api.get("/api/v1/reservations?status=confirmed&token=s3cr3t-in-query")
    assert response.status_code == 200

    line = _request_line(log_lines)
    assert line["request_id"] == response["X-Request-ID"]
    assert GENERATED.fullmatch(line["request_id"])
    assert line["level"] == "info"
    assert line["logger"] == "parkspot.request"
    assert datetime.fromisoformat(line["timestamp"]).utcoffset() == timedelta(0)
    assert line["method"] == "GET"
    assert line["path"] == "/api/v1/reservations"  # never the query string
    assert line["view"] == "api:reservation-list"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert line["user_id"] == driver.pk
    assert line["client_ip"] == "127.0.0.1"
    assert "s3cr3t-in-query" not in log_lines.text


def test_every_line_of_a_request_carries_its_id(client, log_lines):
    # A 404 under /api/ is answered by the API's own handler, with a log line of its
    # own on the way; whatever is logged while serving it has the request's id.
    response = client.get("/api/v1/lots/no-such-lot")
    assert response.status_code == 404
    assert log_lines.all
    assert {line.get("request_id") for line in log_lines.all} == {response["X-Request-ID"]}


def test_a_well_formed_incoming_request_id_is_kept(client, log_lines):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a9c.01:edge")
    assert response["X-Request-ID"] == "lb-7f3a9c.01:edge"
    assert _request_line(log_lines)["request_id"] == "lb-7f3a9c.01:edge"


@pytest.mark.parametrize(
    "incoming",
    ["has spaces", "x" * 129, 'quote"and{json}', "-leading-dash", "é-accent", "line\\nbreak"],
)
def test_a_malformed_incoming_request_id_is_replaced(client, log_lines, incoming):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)
    assert GENERATED.fullmatch(response["X-Request-ID"])
    assert _request_line(log_lines)["request_id"] == response["X-Request-ID"]
    assert incoming not in log_lines.text


def test_two_requests_get_two_ids(client, log_lines):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert first != second
    assert [line["request_id"] for line in log_lines.events("request")] == [first, second]


def test_behind_a_trusted_proxy_the_client_address_is_the_one_it_saw(client, settings, log_lines):
    settings.TRUSTED_PROXIES = 1
    client.get("/healthz", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9")
    assert _request_line(log_lines)["client_ip"] == "203.0.113.9"


def test_a_gate_call_names_the_gate_not_a_user(lot, log_lines):
    device, key = gate_create(lot=lot, name="North")
    Client().post(
        "/api/v1/gate/arrivals",
        {"reservation_id": "NOPE-NOPE", "time": timezone.now().isoformat()},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    line = _request_line(log_lines)
    assert (line["status"], line["gate_id"], line["user_id"]) == (404, device.pk, None)


def test_a_sign_up_link_token_in_the_path_is_masked(client, log_lines):
    client.get("/accounts/signup/confirm/Zm9vYmFyLXNlY3JldC10b2tlbg/")
    line = _request_line(log_lines)
    assert line["path"] == "/accounts/signup/confirm/[redacted]/"
    assert "Zm9vYmFyLXNlY3JldC10b2tlbg" not in log_lines.text


@pytest.mark.urls("tests.test_logs")
def test_a_500_logs_one_request_line_and_the_exception_with_the_request_id(log_lines):
    response = Client(raise_request_exception=False).get("/boom")
    assert response.status_code == 500

    line = _request_line(log_lines)
    assert (line["status"], line["level"]) == (500, "error")
    assert line["request_id"] == response["X-Request-ID"]
    [error] = [entry for entry in log_lines.all if "exception" in entry]
    assert error["request_id"] == response["X-Request-ID"]
    assert error["logger"] == "django.request"
    assert "RuntimeError: the view broke" in error["exception"]


# --- state changes -----------------------------------------------------------------------------
# Logged when the change commits, which happens inside the request that made it:
# these tests let transactions really commit (transaction=True).
committed = pytest.mark.django_db(transaction=True)


@committed
def test_a_cancel_logs_one_line_with_the_reservation_and_from_and_to(
    driver, driver_api, lot, log_lines
):
    reservation = book(driver, lot)
    response = driver_api.post(f"/api/v1/reservations/{reservation.code}/cancel")
    assert response.status_code == 200

    booked, line = log_lines.starting("reservation.")
    assert (booked["event"], booked["from_status"]) == ("reservation.pending_payment", None)
    assert "request_id" not in booked  # booked by the test, not in a request
    assert line["event"] == "reservation.cancelled"
    assert line["reservation"] == reservation.code
    assert (line["from_status"], line["to_status"]) == ("pending_payment", "cancelled")
    assert (line["actor"], line["actor_user_id"]) == ("driver", driver.pk)
    assert (line["amount"], line["currency"]) == (reservation.price_amount, "eur")
    assert line["request_id"] == response["X-Request-ID"]


@committed
def test_a_gate_arrival_and_departure_log_parked_and_completed_with_the_gate_as_actor(
    driver, lot, log_lines
):
    start = timezone.now() - timedelta(minutes=1)
    reservation = reservation_confirm(reservation_id=book(driver, lot, start=start).pk).reservation
    _, key = gate_create(lot=lot, name="North")
    gate = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    arrived = gate.post(
        "/api/v1/gate/arrivals",
        {"reservation_id": reservation.code, "time": start.isoformat()},
        content_type="application/json",
    )
    left = gate.post(
        "/api/v1/gate/departures",
        {"reservation_id": reservation.code, "time": timezone.now().isoformat()},
        content_type="application/json",
    )
    assert (arrived.status_code, left.status_code) == (200, 200)

    _booked, _confirmed, parked, completed = log_lines.starting("reservation.")
    assert parked["event"] == "reservation.parked"
    assert (parked["from_status"], parked["to_status"], parked["actor"]) == (
        "confirmed",
        "parked",
        "gate",
    )
    assert parked["request_id"] == arrived["X-Request-ID"]
    assert parked["details"] == {"gate": "North"}
    assert completed["event"] == "reservation.completed"
    assert completed["request_id"] == left["X-Request-ID"]
    assert (completed["amount_due"], completed["currency"]) == (reservation.price_amount, "eur")
    assert key not in log_lines.text


def test_a_change_that_is_rolled_back_logs_nothing(driver, lot, log_lines):
    # Outside django_capture_on_commit_callbacks the test's transaction never
    # commits: nothing happened, as far as the logs are concerned.
    reservation = book(driver, lot)
    reservation_confirm(reservation_id=reservation.pk)
    assert log_lines.starting("reservation.") == []


@committed
def test_paying_and_capturing_log_the_money_moved(stripe, driver, driver_api, lot, log_lines):
    start = timezone.now() - timedelta(minutes=1)
    reservation = book(driver, lot, start=start)
    paid = driver_api.post(
        f"/api/v1/reservations/{reservation.code}/complete",
        {"payment_token": stripe.card()},
        format="json",
    )
    assert paid.status_code == 200, paid.content
    [authorised] = log_lines.events("payment.authorised")
    assert authorised["reference"] == f"reservation:{reservation.code}"
    assert (authorised["authorised"], authorised["currency"]) == (reservation.price_amount, "eur")
    assert (authorised["from_status"], authorised["to_status"]) == (
        "requires_payment_method",
        "authorised",
    )
    assert authorised["request_id"] == paid["X-Request-ID"]
    [confirmed] = log_lines.events("reservation.confirmed")
    assert confirmed["request_id"] == paid["X-Request-ID"]

    _, key = gate_create(lot=lot, name="North")
    gate = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    for kind, at in (("arrivals", start), ("departures", timezone.now())):
        answer = gate.post(
            f"/api/v1/gate/{kind}",
            {"reservation_id": reservation.code, "time": at.isoformat()},
            content_type="application/json",
        )
        assert answer.status_code == 200, answer.content
    [captured] = log_lines.events("payment.captured")
    assert (captured["captured"], captured["released"], captured["currency"]) == (
        reservation.price_amount,
        0,
        "eur",
    )
    assert "client_secret" not in log_lines.text
    assert "pi_" in captured["payment_intent"]


# --- secrets ---------------------------------------------------------------------------------


def test_passwords_keys_tokens_and_cookies_never_reach_a_line(
    client, lot, log_lines, django_capture_on_commit_callbacks
):
    from tests.factories import UserFactory

    password = "Correct-Horse-Battery-9"
    user = UserFactory(email="logs@example.com", password=password)
    with django_capture_on_commit_callbacks(execute=True):
        wrong = client.post(
            "/accounts/login/", {"username": user.email, "password": "Wrong-Guess-77"}
        )
        right = client.post("/accounts/login/", {"username": user.email, "password": password})
        token = Client().post(
            "/api/v1/auth/token",
            {"email": user.email, "password": password},
            content_type="application/json",
        )
        _, key = gate_create(lot=lot, name="North")
        Client().post(
            "/api/v1/gate/arrivals",
            {"reservation_id": "NOPE-NOPE", "time": timezone.now().isoformat()},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )
    assert (wrong.status_code, right.status_code, token.status_code) == (200, 302, 200)
    session_cookie = right.cookies["sessionid"].value
    csrf_cookie = client.cookies.get("csrftoken")

    assert len(log_lines.events("request")) == 4
    secrets = [password, "Wrong-Guess-77", key, token.json()["token"], session_cookie]
    if csrf_cookie:
        secrets.append(csrf_cookie.value)
    for secret in secrets:
        assert secret not in log_lines.text
    assert "Authorization" not in log_lines.text
    assert "Bearer" not in log_lines.text


def test_a_field_named_like_a_secret_is_masked_whoever_logs_it(log_lines):
    import structlog

    structlog.stdlib.get_logger("careless").info(
        "oops", password="hunter2", api_key="k-123", gate_key="g-456", token="t-789", spot="C-1"
    )
    [line] = log_lines.events("oops")
    assert line["password"] == line["api_key"] == line["gate_key"] == line["token"] == "[redacted]"
    assert line["spot"] == "C-1"


# --- tasks queued by a request ------------------------------------------------------------------


def test_a_task_queued_by_a_request_carries_its_request_id_through_celerys_signals(log_lines):
    """Celery's own publish path (before_task_publish puts the id in the message
    headers) and its worker-side path (task_prerun reads it from the request the
    worker builds from those headers), with no request bound while it runs."""
    import structlog
    from celery.exceptions import AlwaysEagerIgnored
    from celery.signals import before_task_publish

    from config.celery import app
    from config.request_log import TASK_HEADER

    published: dict = {}

    def keep(headers=None, **kwargs):
        published.update(headers or {})

    before_task_publish.connect(keep, weak=False)
    try:
        structlog.contextvars.bind_contextvars(request_id="req-from-web-1")
        # Published for real, to an in-memory broker (send_task is never eager).
        with app.connection_for_write("memory://") as connection, warnings.catch_warnings():
            warnings.simplefilter("ignore", AlwaysEagerIgnored)
            app.send_task("parking.tasks.send_email", kwargs={}, connection=connection)
    finally:
        structlog.contextvars.clear_contextvars()
        before_task_publish.disconnect(keep)
    assert published[TASK_HEADER] == "req-from-web-1"

    # The worker's side: the task's request is built from the message's headers.
    from parking.tasks import send_email

    send_email.apply(
        kwargs={"subject": "s", "body": "b", "to": "x@example.com"},
        headers={TASK_HEADER: "req-from-web-1"},
    )
    [finished] = log_lines.events("task_finished")
    assert finished["request_id"] == "req-from-web-1"
    assert finished["task"] == "parking.tasks.send_email"
    assert finished["state"] == "SUCCESS"
    assert structlog.contextvars.get_contextvars() == {}


# --- formats -----------------------------------------------------------------------------------


def _serve_one_request(log_format: str) -> str:
    script = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "Client().get('/healthz', HTTP_X_REQUEST_ID='fmt-check-1')\n"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url(),  # /healthz asks the database
            "LOG_FORMAT": log_format,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def test_log_format_plain_writes_readable_lines():
    out = _serve_one_request("plain")
    [line] = [line for line in out.splitlines() if "fmt-check-1" in line]
    assert not line.startswith("{")
    assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z \[info\s*\] request\s+\[parkspot\.request\]", line)
    assert "request_id=fmt-check-1" in line
    assert "status=200" in line


def test_log_format_json_writes_one_object_per_line():
    import json

    out = _serve_one_request("json")
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    [request] = [line for line in lines if line["event"] == "request"]
    assert (request["request_id"], request["status"]) == ("fmt-check-1", 200)


def test_the_request_log_sees_every_answer_right_after_the_metrics(settings):
    assert settings.MIDDLEWARE[:2] == [
        "config.metrics.RequestMetricsMiddleware",
        "config.request_log.RequestLogMiddleware",
    ]
