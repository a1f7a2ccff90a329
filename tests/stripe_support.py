"""localstripe for tests: a real process per test session, emptied before each test.

Fixtures `localstripe_url` and `stripe` are re-exported by tests/conftest.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import stripe as stripe_sdk
from django.conf import settings as django_settings

ROOT = Path(__file__).resolve().parents[1]

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # attaches fine, every charge is declined


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe_url():
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "manage.py",
            "localstripe",
            "--port",
            str(port),
            "--state",
            "",
            "--webhook-url",
            "",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:  # wait for the process to listen (not for time to pass)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"localstripe did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


class Stripe:
    """What a test needs of Stripe: make cards, look at what it holds."""

    def __init__(self, url: str):
        self.url = url
        self.client = stripe_sdk.StripeClient(
            django_settings.STRIPE_SECRET_KEY, base_addresses={"api": url}, max_network_retries=0
        )

    def card(self, number: str = GOOD_CARD) -> str:
        """A PaymentMethod id, as Stripe.js would hand one to the browser."""
        method = self.client.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
            }
        )
        return method.id

    def intent(self, intent_id: str) -> dict:
        return self.client.v1.payment_intents.retrieve(intent_id).to_dict()

    def intents(self) -> list[dict]:
        return [i.to_dict() for i in self.client.v1.payment_intents.list().data]

    def kept(self, intent_id: str) -> int:
        """Money Stripe kept on the intent: captured minus refunded or released."""
        charge = self.intent(intent_id)["latest_charge"]
        if not charge or not charge["captured"]:
            return 0
        return charge["amount"] - charge["amount_refunded"]


@pytest.fixture
def stripe(localstripe_url, settings):
    settings.STRIPE_API_BASE = localstripe_url
    settings.STRIPE_SECRET_KEY = "sk_test_parkspot"
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_parkspot"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test_parkspot"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_JS_URL = f"{localstripe_url}/js.stripe.com/v3/"
    request = urllib.request.Request(f"{localstripe_url}/_config/data", method="DELETE")  # noqa: S310
    urllib.request.urlopen(request, timeout=5).close()  # noqa: S310  (loopback)
    return Stripe(localstripe_url)
