"""Who is asking: the client's address, as far as the proxies we trust say.

Behind `TRUSTED_PROXIES` reverse proxies (0 by default: none), each of which
appends the address it received the request from to X-Forwarded-For, the
client is the address the outermost trusted proxy saw: the TRUSTED_PROXIES-th
entry from the end. Anything a client writes in the header before that is its
own invention and is ignored. With no trusted proxy the header is not read at
all. Every limit keyed by address (logins, sign-ups, bookings, password
resets) uses this one function.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "") or "unknown"
    proxies = settings.TRUSTED_PROXIES
    if not proxies:
        return remote
    chain = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    chain = [part for part in chain if part]
    if len(chain) < proxies:  # fewer hops than configured: do not guess
        return remote
    return chain[-proxies][:64]
