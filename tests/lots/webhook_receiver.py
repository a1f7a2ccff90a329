"""A real HTTP server in a thread that plays a partner's webhook receiver: it
records what it is sent and answers what the test asks (a status code, or no
answer at all, to time the sender out)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG = "hang"  # hold the connection without answering


@dataclass
class Received:
    path: str
    headers: Message  # names in any case, as HTTP has them
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


def signature_is_valid(secret: str, header: str, body: bytes) -> bool:
    """A receiver's own check of `ParkSpot-Signature` (as docs/webhooks.md
    shows it), independent of lots/webhooks/signing.py."""
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(
        secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: list[int | str] = []  # consumed one per request; then 200
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(Received(self.path, self.headers, body))
                answer = receiver.answers.pop(0) if receiver.answers else 200
                if answer == HANG:
                    receiver.release.wait(10)
                    return
                self.send_response(answer)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/parkspot"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
