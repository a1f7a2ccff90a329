"""One webhook POST. Never inside a database transaction (a slow partner would
hold locks): services.deliveries_send calls it between its claim and its finish."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.db import connection

from lots.webhooks.addresses import refused_address
from lots.webhooks.signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, sign

USER_AGENT = "ParkSpot-Webhooks/1"


@dataclass(frozen=True)
class SendResult:
    ok: bool  # the endpoint answered 2xx
    status_code: int | None  # None: no answer (refused, timed out, bad TLS)
    error: str  # why it is not ok ("" when ok)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect is an answer, not an invitation: the endpoint's address is
    # the one staff registered (and a redirect could point anywhere).
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def body_of(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def post(
    *, url: str, secret: str, event_id: str, event_type: str, payload: dict, timeout: float
) -> SendResult:
    if connection.in_atomic_block:
        raise RuntimeError("A webhook is sent outside any database transaction.")
    refused = refused_address(url)
    if refused:
        return SendResult(ok=False, status_code=None, error=refused[:500])
    body = body_of(payload)
    request = urllib.request.Request(  # noqa: S310 (the URL's scheme is checked on registration)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(secret, body),
            EVENT_ID_HEADER: event_id,
            EVENT_TYPE_HEADER: event_type,
        },
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(1024)  # the answer's body is not used
            code = response.status
    except urllib.error.HTTPError as exc:  # 3xx (not followed), 4xx, 5xx
        exc.close()
        return SendResult(ok=False, status_code=exc.code, error=f"HTTP {exc.code}")
    except (OSError, ValueError) as exc:  # refused, timed out, TLS, bad URL
        reason = getattr(exc, "reason", None) or exc
        return SendResult(ok=False, status_code=None, error=f"{type(exc).__name__}: {reason}"[:500])
    if 200 <= code < 300:
        return SendResult(ok=True, status_code=code, error="")
    return SendResult(ok=False, status_code=code, error=f"HTTP {code}")
