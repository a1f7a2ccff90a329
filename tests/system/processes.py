"""Starting ParkSpot's real processes (gunicorn, Celery) on the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def broker_url(redis_db: int = 14) -> str:
    if settings.REDIS_URL:
        # A database of its own, emptied, so no stale message from elsewhere runs.
        import redis

        url = settings.REDIS_URL.rsplit("/", 1)[0] + f"/{redis_db}"
        redis.Redis.from_url(url).flushdb()
        return url
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail("REDIS_URL is required (REQUIRE_SERVICES=1) for the broker")
    return "filesystem://"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, *, timeout: float, process: subprocess.Popen, what: str) -> None:
    """Poll until something has happened (never a sleep for time to pass)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            pytest.fail(f"{what}: the process died:\n{_output(process)}")
        if time.monotonic() > deadline:
            process.terminate()
            pytest.fail(f"{what}: not within {timeout}s:\n{_output(process)}")
        time.sleep(0.1)


def _output(process: subprocess.Popen) -> str:
    if getattr(process, "output_path", None):
        return output(process)[-4000:]
    try:
        return (process.communicate(timeout=5)[0] or "")[-4000:]
    except subprocess.TimeoutExpired:
        return "(still running)"


def output(process: subprocess.Popen) -> str:
    """Everything a process started by start_gunicorn has written so far."""
    return Path(process.output_path).read_text(errors="replace")


def collectstatic() -> None:
    """Debug off serves hashed static files from a manifest, as make run does."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "DJANGO_DEBUG": "0"},
        timeout=120,
    )


def start_gunicorn(port: int, **env: str) -> subprocess.Popen:
    """gunicorn with config/gunicorn.py, debug off, on the test database. Its
    output (a log line per request) goes to a file, read with output(process): a
    pipe nobody reads while it runs would fill up and stop it."""
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115  (kept open by the process)
        prefix="gunicorn-", suffix=".log", delete=False
    )
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "config/gunicorn.py",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": database_url(),
            "DJANGO_DEBUG": "0",
            "GUNICORN_WORKERS": "2",
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log.close()
    process.output_path = log.name

    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_for(listening, timeout=60, process=process, what="gunicorn listening")
    return process
