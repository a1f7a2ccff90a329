"""Payments on (BENCH_PAYMENTS=1): localstripe beside the server, and a card per driver.

localstripe runs as `manage.py localstripe` does for `make run`, in memory, on a
free port, sending its webhooks to the bench server as Stripe would. Each
driver gets one PaymentMethod (a saved card), made before the phases: the
paid-bookings phase then books and pays with `complete`, as an API client does."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from bench.config import ROOT, VAR_DIR
from bench.server import HOST, free_port

SECRET_KEY = "sk_test_localstripe"  # noqa: S105 (localstripe takes any key)
PUBLISHABLE_KEY = "pk_test_localstripe"
WEBHOOK_SECRET = "whsec_localstripe"  # noqa: S105 (between two local processes)
GOOD_CARD = "4242424242424242"


class LocalStripe:
    def __init__(self, webhook_port: int) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.webhook_url = f"http://{HOST}:{webhook_port}/payments/webhooks/stripe/"
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """What the server needs to talk to it."""
        return {
            "STRIPE_SECRET_KEY": SECRET_KEY,
            "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": self.url,
        }

    def start(self, wait_seconds: float = 30.0) -> None:
        import os

        log = (VAR_DIR / "bench-localstripe.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "localstripe",
                "--port",
                str(self.port),
                "--state",
                "",
                "--webhook-url",
                self.webhook_url,
            ],
            cwd=ROOT,
            env={**os.environ, **self.env()},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + wait_seconds
        while True:  # until it listens
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        "localstripe did not start; see var/bench-localstripe.log"
                    ) from exc
                time.sleep(0.1)

    def cards(self, tokens: list[str]) -> dict[str, str]:
        """One PaymentMethod id per driver (by bearer token)."""
        import stripe

        client = stripe.StripeClient(
            SECRET_KEY, base_addresses={"api": self.url}, max_network_retries=0
        )
        out = {}
        for token in tokens:
            method = client.v1.payment_methods.create(
                params={
                    "type": "card",
                    "card": {"number": GOOD_CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
                }
            )
            out[token] = method.id
        return out

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
