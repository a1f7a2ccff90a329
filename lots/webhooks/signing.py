"""The `ParkSpot-Signature` header, as Stripe signs its webhooks:

    ParkSpot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes
with the endpoint's secret, compares in constant time, and refuses a timestamp
too far from its clock (replays). docs/webhooks.md shows it in a few lines.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "ParkSpot-Signature"
EVENT_ID_HEADER = "ParkSpot-Event-Id"
EVENT_TYPE_HEADER = "ParkSpot-Event-Type"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    pass


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The header's value for `body` sent now (or at `timestamp`)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """The signed timestamp if `header` signs `body` with `secret` within
    `tolerance` seconds of now; SignatureError otherwise."""
    timestamp = None
    macs = []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            macs.append(value)
    if timestamp is None or not macs:
        raise SignatureError("The signature header has no timestamp or no v1 signature.")
    expected = _mac(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, mac) for mac in macs):
        raise SignatureError("The signature does not match the body.")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError("The signature's timestamp is outside the tolerance.")
    return timestamp
