"""localstripe behind a real HTTP proxy that can hold a request (a slow Stripe)
or answer some with a 503 (Stripe failing them), so that tests can order what
happens around a call in flight without touching our code."""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

# A held request that nobody releases fails the test instead of hanging it.
HOLD_LIMIT_SECONDS = 30


@dataclass
class Held:
    method: str
    path_suffix: str
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def wait_until_arrived(self) -> None:
        arrived = self.arrived.wait(HOLD_LIMIT_SECONDS)
        assert arrived, f"{self.method} …{self.path_suffix} never came"

    def release(self) -> None:
        self.released.set()


class StripeProxy:
    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self._lock = threading.Lock()
        self._holds: list[Held] = []
        self._failing: list[tuple[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_DELETE = do_GET

            def log_message(self, *args) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def hold(self, method: str, path_suffix: str) -> Held:
        """The next matching request waits until released, then goes through."""
        held = Held(method, path_suffix)
        with self._lock:
            self._holds.append(held)
        return held

    def fail(self, method: str, path_suffix: str) -> None:
        """Matching requests get Stripe's 503 (an unknown outcome) until heal()."""
        with self._lock:
            self._failing.append((method, path_suffix))

    def heal(self) -> None:
        with self._lock:
            self._failing.clear()

    def close(self) -> None:
        with self._lock:
            for held in self._holds:
                held.release()
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        method, path = request.command, request.path.split("?")[0]
        with self._lock:
            failing = any(m == method and path.endswith(s) for m, s in self._failing)
            held = next(
                (h for h in self._holds if h.method == method and path.endswith(h.path_suffix)),
                None,
            )
            if held:
                self._holds.remove(held)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        if failing:
            self._reply(request, 503, json.dumps({"error": {"message": "down"}}).encode())
            return
        if held:
            held.arrived.set()
            held.released.wait(HOLD_LIMIT_SECONDS)
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "connection", "content-length")
        }
        upstream = http.client.HTTPConnection(
            self.upstream.hostname, self.upstream.port, timeout=HOLD_LIMIT_SECONDS
        )
        try:
            upstream.request(method, request.path, body=body, headers=headers)
            response = upstream.getresponse()
            self._reply(request, response.status, response.read())
        finally:
            upstream.close()

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


@pytest.fixture
def stripe_proxy(stripe, settings):
    """Point payments at a proxy in front of localstripe (the `stripe` fixture's)."""
    proxy = StripeProxy(stripe.url)
    settings.STRIPE_API_BASE = proxy.url
    yield proxy
    proxy.close()
