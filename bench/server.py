"""Start and stop the gunicorn server under test."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import loadgen
from bench.config import ROOT, VAR_DIR

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerConfig:
    worker_class: str
    workers: int
    threads: int
    port: int

    def describe(self) -> str:
        threads = f" x {self.threads} threads" if self.worker_class == "gthread" else ""
        return f"gunicorn {self.worker_class}, {self.workers} workers{threads}, {HOST}:{self.port}"

    def argv(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--chdir",
            str(ROOT),
            "--bind",
            f"{HOST}:{self.port}",
            "--worker-class",
            self.worker_class,
            "--workers",
            str(self.workers),
            "--backlog",
            "2048",
            "--keep-alive",
            "5",
            "--timeout",
            "60",
            "--graceful-timeout",
            "10",
            "--log-level",
            "warning",
        ]
        if self.worker_class == "gthread":
            args += ["--threads", str(self.threads)]
        return args


class Server:
    """gunicorn in its own session, logging to var/bench-gunicorn.log."""

    def __init__(self, config: ServerConfig, env: dict[str, str]) -> None:
        self.config = config
        self.env = env
        self.log_path: Path = VAR_DIR / "bench-gunicorn.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, wait_seconds: float = 60.0) -> None:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.config.argv(),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us, and we stop it cleanly
        )
        log.close()
        asyncio.run(self._wait_healthy(wait_seconds))

    async def _wait_healthy(self, wait_seconds: float) -> None:
        deadline = time.monotonic() + wait_seconds
        last = "no answer"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                response = await loadgen.send(HOST, self.config.port, _HEALTHZ, timeout=2.0)
                if response.status == 200:
                    return
                last = f"HTTP {response.status}: {response.body[:200]!r}"
            except (OSError, TimeoutError, loadgen.ProtocolError) as exc:
                last = repr(exc)
            await asyncio.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn never answered /healthz ({last}); see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (graceful: workers finish their requests), then SIGKILL if stuck."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait(5)


_HEALTHZ = loadgen.Request("GET", "/healthz")


def metrics_dir() -> Path:
    """var/bench-metrics, emptied: this run's counters only."""
    path = VAR_DIR / "bench-metrics"
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):
        old.unlink()
    return path


def server_env(
    database_url: str,
    redis_url: str,
    *,
    stripe: dict[str, str] | None = None,
    ceiling: bool = True,
) -> dict[str, str]:
    """The server's environment: ours, pointed at the bench database and cache.

    `stripe`: the Stripe settings (localstripe's) when payments are on; without
    them the server has none. `ceiling`: install the ceiling's app and URLs."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="0",
        # Errors only: with payments off, every booking would log that Stripe is
        # not configured.
        LOG_LEVEL="ERROR",
        # Tokens come from the database seed; the smoke test still registers one
        # driver through the API, which must not be throttled.
        THROTTLE_AUTH_RATE="100000/min",
        # 200 drivers make thousands of bookings they never pay for: the limits
        # that stop one account hoarding a lot are raised, as a load test should.
        THROTTLE_BOOKING_RATE="1000000/min",
        MAX_UNPAID_HOLDS="1000000",
        PYTHONDONTWRITEBYTECODE="1",
        # The workers' counters, added up by /metrics (the bench reads them).
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir()),
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    else:
        env.pop("REDIS_URL", None)
    # Never the developer's Stripe account: localstripe's settings, or none.
    for name in ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_API_BASE"):
        env.pop(name, None)
    env.pop("STRIPE_WEBHOOK_SECRET", None)
    env.pop("STRIPE_JS_URL", None)
    env.update(stripe or {})
    if ceiling:
        env["BENCH_CEILING"] = "1"
    else:
        env.pop("BENCH_CEILING", None)
    return env
