"""Partner webhooks for real: a Celery worker with its embedded beat, in its own
process, reads a booking's event and POSTs it, signed, to a receiver running in
this test. No test code calls a task or a service of the webhooks."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from lots.webhooks.models import EVENT_TYPES, WebhookDelivery
from lots.webhooks.services import webhook_endpoint_create
from tests.lots.webhook_receiver import Receiver, signature_is_valid
from tests.reservations.helpers import book
from tests.system.test_scheduler_worker import ROOT, _database_url

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_worker_sends_a_bookings_event_to_the_lots_endpoint(lot, driver, settings, tmp_path):
    settings.WEBHOOK_ALLOW_LOOPBACK_HTTP = True
    with Receiver() as receiver:
        endpoint = webhook_endpoint_create(lot=lot, url=receiver.url, event_types=list(EVENT_TYPES))
        reservation = book(driver, lot)
        broker = settings.CELERY_BROKER_URL
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            # The test's own broker (nothing in this process consumes it: tasks
            # run eagerly here), or a file-system one of its own.
            "CELERY_BROKER_URL": broker if broker.startswith("redis") else "filesystem://",
            "CELERY_FILESYSTEM_DIR": str(tmp_path / "broker"),
            "WEBHOOK_DISPATCH_SECONDS": "1",
            "WEBHOOK_ALLOW_LOOPBACK_HTTP": "1",
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
            # Poll for the worker's work (not a sleep for time to pass).
            deadline = time.monotonic() + 90
            while not WebhookDelivery.objects.filter(status="delivered").exists():
                if worker.poll() is not None:
                    pytest.fail(f"the worker died:\n{worker.stdout.read()[-4000:]}")
                if time.monotonic() > deadline:
                    worker.terminate()
                    pytest.fail(f"nothing was delivered:\n{worker.stdout.read()[-4000:]}")
                time.sleep(0.2)
        finally:
            worker.terminate()
            worker.wait(timeout=30)

    [request] = receiver.received
    assert signature_is_valid(endpoint.secret, request.headers["ParkSpot-Signature"], request.body)
    assert request.json["type"] == "reservation.created"
    assert request.json["data"]["reservation"]["id"] == reservation.code
