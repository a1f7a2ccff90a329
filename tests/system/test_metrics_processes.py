"""Metrics across processes, for real: gunicorn's workers and a Celery worker
write to one PROMETHEUS_MULTIPROC_DIR, and /metrics, whichever worker answers,
counts what every one of them did."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone

from reservations.models import Reservation, Status
from tests.factories import LotFactory, RateFactory, SpotFactory
from tests.metrics_support import scrape_http
from tests.reservations.helpers import book
from tests.system.processes import (
    ROOT,
    broker_url,
    collectstatic,
    database_url,
    free_port,
    start_gunicorn,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

HEALTHZ = {"view": "healthz", "method": "GET"}
LATENCY = "django_http_requests_latency_seconds_by_view_method_count"


@pytest.fixture(scope="module", autouse=True)
def _static():
    collectstatic()


def _get(port: int, path: str) -> int:
    # A new connection each time, so that the workers share the requests.
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        client.request("GET", path, headers={"Connection": "close"})
        response = client.getresponse()
        response.read()
        return response.status
    finally:
        client.close()


def _pids(directory: Path, kind: str) -> set[str]:
    return {
        match.group(1)
        for name in os.listdir(directory)
        if (match := re.fullmatch(rf"{kind}_(\d+)\.db", name))
    }


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def test_metrics_count_the_requests_of_both_gunicorn_workers(tmp_path):
    directory = tmp_path / "metrics"
    port = free_port()
    server = start_gunicorn(port, PROMETHEUS_MULTIPROC_DIR=str(directory))
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def hit() -> None:
        barrier.wait()
        for _ in range(5):
            statuses.append(_get(port, "/healthz"))

    try:
        threads = [threading.Thread(target=hit) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 40
        # Both workers answered some (each writes its own file)…
        assert len(_pids(directory, "counter")) == 2, os.listdir(directory)
        # …and whichever worker answers /metrics counts all 40.
        for _ in range(4):
            assert scrape_http(port).value(LATENCY, **HEALTHZ) == 40
    finally:
        _stop(server)


def test_gunicorn_without_a_directory_makes_its_own_and_removes_it_when_it_stops(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    port = free_port()
    server = start_gunicorn(port)
    own = ROOT / "var" / "metrics" / f"gunicorn-{server.pid}"
    try:
        for _ in range(3):
            assert _get(port, "/healthz") == 200
        assert own.is_dir()
        assert scrape_http(port).value(LATENCY, **HEALTHZ) == 3
    finally:
        _stop(server)
    assert not own.exists()


def test_what_the_celery_worker_counts_shows_in_the_web_servers_metrics(tmp_path, driver):
    directory = tmp_path / "metrics"
    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory(lot=lot)
    # Reserved 20 minutes ago and never paid: its 15-minute hold has lapsed.
    with time_machine.travel(timezone.now() - timedelta(minutes=20)):
        unpaid = book(driver, lot, start=timezone.now() + timedelta(hours=5))
    port = free_port()
    server = start_gunicorn(port, PROMETHEUS_MULTIPROC_DIR=str(directory))
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
        env={
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker_url(),
            "CELERY_FILESYSTEM_DIR": str(tmp_path / "broker"),
            "SWEEP_INTERVAL_SECONDS": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(directory),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        before = scrape_http(port)
        assert before.value("parkspot_holds_expired_total") == 0
        assert before.value("parkspot_sweep_overdue_seconds", sweep="expire_lapsed_holds") > 0

        def expired() -> bool:
            return Reservation.objects.filter(pk=unpaid.pk, status=Status.EXPIRED).exists()

        wait_for(expired, timeout=90, process=worker, what="the worker expiring the hold")
        task = "reservations.tasks.expire_lapsed_holds"

        def counted() -> bool:
            return scrape_http(port).value("parkspot_task_runs_total", task=task) >= 1

        wait_for(counted, timeout=30, process=worker, what="the task's run counted")
        after = scrape_http(port)
        assert after.value("parkspot_holds_expired_total") == 1
        assert after.value("parkspot_sweep_overdue_seconds", sweep="expire_lapsed_holds") == 0
        # The sweep's heartbeat: it ran moments ago.
        assert 0 <= after.value("parkspot_sweep_age_seconds", sweep="expire_lapsed_holds") < 30
        assert after.value("parkspot_task_runs_total", task=task, state="SUCCESS") >= 1
        assert after.value("parkspot_task_last_success_timestamp_seconds", task=task) > 0
        assert str(worker.pid) in _pids(directory, "counter")  # the worker's own file
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        _stop(server)
