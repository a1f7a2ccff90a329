"""The scheduler for real: a Celery worker with an embedded beat, in its own
process, on the test database (and Redis as the broker when there is one).
No test code calls a task: the beat must send them and the worker run them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.utils import timezone

from payments.models import Payment
from reservations.models import Reservation, Status
from reservations.services import payment_reference, reservation_complete
from tests.factories import LotFactory, RateFactory, SpotFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _broker_url() -> str:
    if settings.REDIS_URL:
        # A database of its own, emptied, so no stale message from elsewhere runs.
        import redis

        url = settings.REDIS_URL.rsplit("/", 1)[0] + "/14"
        redis.Redis.from_url(url).flushdb()
        return url
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail("REDIS_URL is required (REQUIRE_SERVICES=1) for the broker")
    return "filesystem://"


def _wait_for(predicate, *, timeout: float, process) -> None:
    """Poll the database until the worker has done its job (not a sleep for time)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            pytest.fail(f"the worker died:\n{process.stdout.read()[-4000:]}")
        if time.monotonic() > deadline:
            process.terminate()
            pytest.fail(f"the worker did not act in {timeout}s:\n{process.stdout.read()[-4000:]}")
        time.sleep(0.2)


def test_beat_and_worker_expire_holds_and_charge_no_shows(
    stripe, localstripe_url, driver, tmp_path
):
    lot = LotFactory(currency="usd")
    RateFactory(lot=lot, hourly_amount=300, daily_max_amount=2400)
    SpotFactory.create_batch(2, lot=lot)
    now = timezone.now()
    # Booked and paid three hours ago for a window that started two hours ago:
    # its grace (60 min) has passed and nobody came.
    with time_machine.travel(now - timedelta(hours=3)):
        no_show = book(driver, lot, start=timezone.now() + timedelta(hours=1), hours=30)
        reservation_complete(reservation_id=no_show.pk, payment_method_id=stripe.card())
    # Reserved 20 minutes ago and never paid: its 15-minute hold has lapsed.
    with time_machine.travel(now - timedelta(minutes=20)):
        unpaid = book(driver, lot, start=timezone.now() + timedelta(hours=5))

    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": _broker_url(),
        "CELERY_FILESYSTEM_DIR": str(tmp_path / "broker"),
        "SWEEP_INTERVAL_SECONDS": "1",
        "STRIPE_API_BASE": localstripe_url,
        "STRIPE_SECRET_KEY": settings.STRIPE_SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": settings.STRIPE_PUBLISHABLE_KEY,
        "STRIPE_WEBHOOK_SECRET": settings.STRIPE_WEBHOOK_SECRET,
    }
    worker = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--beat",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--schedule",
            str(tmp_path / "beat-schedule"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def done() -> bool:
            states = dict(
                Reservation.objects.filter(pk__in=[no_show.pk, unpaid.pk]).values_list(
                    "pk", "status"
                )
            )
            settled = Reservation.objects.filter(pk=no_show.pk, settled_at__isnull=False)
            return (
                states == {no_show.pk: Status.NO_SHOW, unpaid.pk: Status.EXPIRED}
                and settled.exists()
            )

        _wait_for(done, timeout=90, process=worker)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    payment = Payment.objects.get(reference=payment_reference(no_show))
    assert (payment.status, payment.amount_captured) == ("captured", 2400)
    assert stripe.kept(payment.payment_intent_id) == 2400
    no_show.refresh_from_db()
    assert no_show.events.last().actor == "scheduler"
