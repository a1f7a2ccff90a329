"""Logs of real processes: gunicorn and a Celery worker, as `make run` starts them.

A request's id reaches the worker: the task the request queued (the sign-up
e-mail) is published by gunicorn's worker with the id in its message headers,
and the Celery worker's line for that task carries it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests.system.processes import (
    ROOT,
    collectstatic,
    database_url,
    free_port,
    output,
    start_gunicorn,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "Trace-Me-Not-8841"


def _broker(tmp_path: Path) -> str:
    """This run's own broker: the Redis database CELERY_BROKER_URL names (the
    tests' tasks run eagerly and never use it), emptied; else the file system."""
    url = settings.CELERY_BROKER_URL
    if url.startswith("redis://"):
        import redis

        redis.Redis.from_url(url).flushdb()
        return url
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail("CELERY_BROKER_URL is required (REQUIRE_SERVICES=1) for the broker")
    return "filesystem://"


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_a_task_queued_by_a_request_logs_its_request_id_in_the_worker(tmp_path):
    collectstatic()
    env = {
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": _broker(tmp_path),
        "CELERY_FILESYSTEM_DIR": str(tmp_path / "broker"),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "THROTTLE_SIGNUP_RATE": "1000/min",
        # The e-mail stays in the worker's memory: the console backend would print
        # the sign-up link (a token) among the log lines.
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }
    port = free_port()
    server = start_gunicorn(port, **env)
    worker_output = tmp_path / "worker.log"
    with worker_output.open("w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/auth/register",
            data=json.dumps({"email": "trace@example.com", "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json", "X-Request-ID": "signup-trace-42"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            assert response.status == 201
            assert response.headers["X-Request-ID"] == "signup-trace-42"

        def task_logged() -> bool:
            return any(
                line.get("event") == "task_finished"
                for line in _json_lines(worker_output.read_text())
            )

        wait_for(task_logged, timeout=120, process=worker, what="the worker running the task")
    finally:
        _stop(worker)
        _stop(server)

    worker_lines = _json_lines(worker_output.read_text())
    [task] = [line for line in worker_lines if line["event"] == "task_finished"]
    assert task["task"] == "parking.tasks.send_signup_link"
    assert task["request_id"] == "signup-trace-42"
    assert task["state"] == "SUCCESS"
    # The worker's own lines (start-up, "ready") are JSON too, with no request id.
    assert any(line["event"].endswith("ready.") for line in worker_lines)

    web = output(server)
    web_lines = _json_lines(web)
    # Nothing but JSON: gunicorn's error log is JSON, its access log is off.
    assert len(web_lines) == len([line for line in web.splitlines() if line.strip()]), web
    assert any(line["logger"] == "gunicorn.error" for line in web_lines)
    [line] = [line for line in web_lines if line["event"] == "request"]
    assert (line["request_id"], line["path"], line["status"]) == (
        "signup-trace-42",
        "/api/v1/auth/register",
        201,
    )
    assert PASSWORD not in web + worker_output.read_text()
