"""One active beat however many run, and another takes over when it dies; the
readiness check sees a dead scheduler within a few sweep intervals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from django.test import Client

from tests.system.processes import ROOT, broker_url, database_url

pytestmark = pytest.mark.django_db(transaction=True)


class Process:
    """A ParkSpot process whose output lines are collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.lines: list[str] = []
        self.popen = subprocess.Popen(  # noqa: S603
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line)

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()


def _until(predicate, timeout: float, what: str, *processes: Process) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            output = "\n".join("".join(p.lines[-40:]) for p in processes)
            pytest.fail(f"{what} not within {timeout}s:\n{output}")
        time.sleep(0.2)


def _env(tmp_path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url(redis_db=13),
        "CELERY_FILESYSTEM_DIR": str(tmp_path / "broker"),
        "BEAT_LOCK_FILE": str(tmp_path / "beat.lock"),
        "BEAT_LOCK_TTL_SECONDS": "3",
        "SWEEP_INTERVAL_SECONDS": "1",
        **extra,
    }


def _beat(env) -> Process:
    return Process([sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO"], env)


def _worker(env) -> Process:
    return Process(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-l", "INFO"],
        env,
    )


SENDING = "Sending due task"


def test_two_beats_send_once_and_the_standby_takes_over_when_the_active_one_dies(tmp_path):
    env = _env(tmp_path)
    first, second = _beat(env), _beat(env)
    try:
        _until(
            lambda: first.count(SENDING) + second.count(SENDING) >= 10, 60, "sending", first, second
        )
        active, standby = (first, second) if first.count(SENDING) else (second, first)
        assert standby.count(SENDING) == 0
        assert active.count("Beat lock taken") == 1
        _until(lambda: standby.count("standing by") == 1, 10, "standby", standby)

        active.stop(signal.SIGKILL)  # dies without letting go of anything
        # Well within a minute (the lock's time to live here is 3 s).
        _until(lambda: standby.count(SENDING) >= 3, 30, "takeover", standby)
        assert standby.count("Beat lock taken") == 1
    finally:
        first.stop()
        second.stop()


def test_readiness_fails_when_beat_stops_and_recovers_when_it_returns(tmp_path, settings):
    settings.SCHEDULER_STALE_AFTER_SECONDS = 4
    env = _env(tmp_path)
    worker, beat = _worker(env), _beat(env)
    browser = Client()

    def ready() -> int:
        return browser.get("/readyz").status_code

    try:
        _until(lambda: ready() == 200, 60, "ready", worker, beat)
        beat.stop(signal.SIGKILL)
        _until(lambda: ready() == 503, 30, "not ready", worker)
        body = browser.get("/readyz").json()
        assert body["checks"]["scheduler"]["status"] == "failing"
        assert body["checks"]["database"]["status"] == "ok"

        beat = _beat(env)
        _until(lambda: ready() == 200, 60, "ready again", worker, beat)
    finally:
        beat.stop()
        worker.stop()


@pytest.mark.postgres
def test_a_stopped_worker_finishes_the_sweep_it_is_running(tmp_path, driver):
    """SIGTERM while a sweep waits on the database: the worker finishes it, then
    exits; nothing is lost."""
    from datetime import timedelta

    import psycopg
    import time_machine
    from celery import Celery
    from django.db import connection
    from django.utils import timezone
    from kombu import Connection

    from reservations.models import Reservation, Status
    from tests.factories import LotFactory, RateFactory, SpotFactory
    from tests.reservations.helpers import book

    lot = LotFactory()
    RateFactory(lot=lot)
    SpotFactory(lot=lot)
    with time_machine.travel(timezone.now() - timedelta(minutes=20)):
        lapsed = book(driver, lot, start=timezone.now() + timedelta(hours=3))
    env = _env(tmp_path)
    worker = _worker(env)
    dbname = connection.settings_dict["NAME"]
    try:
        _until(lambda: worker.count("ready.") >= 1, 60, "worker ready", worker)
        with (
            psycopg.connect(dbname=dbname, user="postgres", host="127.0.0.1") as blocker,
            psycopg.connect(
                dbname=dbname, user="postgres", host="127.0.0.1", autocommit=True
            ) as watcher,
        ):
            blocker.execute(
                "SELECT 1 FROM reservations_reservation WHERE id = %s FOR UPDATE", [lapsed.pk]
            )
            # A connection given explicitly: Celery reads CELERY_BROKER_URL from
            # the environment first, and this test process has its own.
            with (
                Celery(set_as_current=False) as sender,
                Connection(env["CELERY_BROKER_URL"]) as to_worker,
            ):
                sender.send_task("reservations.tasks.expire_lapsed_holds", connection=to_worker)

            def waiting() -> bool:
                query = (
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND wait_event_type = 'Lock'"
                )
                return watcher.execute(query, [dbname]).fetchone()[0] > 0

            _until(waiting, 60, "the sweep waiting on the row", worker)
            worker.popen.send_signal(signal.SIGTERM)
            blocker.rollback()
        assert worker.popen.wait(timeout=60) == 0
    finally:
        worker.stop()
    lapsed.refresh_from_db()
    assert lapsed.status == Status.EXPIRED
    assert Reservation.objects.get(pk=lapsed.pk).settlement == "settled"
