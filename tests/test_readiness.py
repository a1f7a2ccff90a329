"""/healthz is a cheap liveness probe; /readyz checks what ParkSpot needs."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from reservations.models import SweepRun
from reservations.services import sweep_record

pytestmark = pytest.mark.django_db


def _ready():
    response = Client().get("/readyz")
    return response.status_code, response.json()


def test_ready_when_every_dependency_answers_and_a_sweep_ran_lately():
    sweep_record(name="expire_lapsed_holds")
    status, body = _ready()
    assert (status, body["status"]) == (200, "ok"), body
    assert set(body["checks"]) == {"database", "cache", "broker", "scheduler"}
    assert body["checks"]["scheduler"]["last_sweep_age_seconds"] < 5


def test_not_ready_before_any_sweep_or_when_the_last_is_stale(settings):
    status, body = _ready()
    assert status == 503
    assert "no sweep has run yet" in body["checks"]["scheduler"]["detail"]

    SweepRun.objects.create(
        name="declare_no_shows",
        last_run_at=timezone.now() - timedelta(seconds=settings.SCHEDULER_STALE_AFTER_SECONDS + 1),
    )
    status, body = _ready()
    assert (status, body["checks"]["scheduler"]["status"]) == (503, "failing")
    assert body["checks"]["database"]["status"] == "ok"


def test_a_broker_that_does_not_answer_is_named(monkeypatch):
    from config.celery import app

    sweep_record(name="settle_payments")
    nowhere = "redis://127.0.0.1:1/0"  # nothing listens there
    # Celery reads CELERY_BROKER_URL from the environment first, then its settings.
    monkeypatch.setenv("CELERY_BROKER_URL", nowhere)
    saved = {key: app.conf.get(key) for key in ("broker_url", "CELERY_BROKER_URL")}
    for key in saved:
        app.conf[key] = nowhere
    try:
        status, body = _ready()
    finally:
        for key, value in saved.items():
            app.conf[key] = value
    assert status == 503
    assert body["checks"]["broker"]["status"] == "failing"
    assert body["checks"]["scheduler"]["status"] == "ok"


def test_liveness_stays_cheap():
    assert Client().get("/healthz").json() == {"status": "ok"}
