"""Rate limits, counted in the shared cache: bookings per driver (config/throttles.py)
and what costs us e-mails or accounts (parking/limits.py).

Each limit counts in the shared cache (every process behind one Redis agrees), in
fixed windows: "20/hour" allows 20 in each clock hour. Keys are hashed, so no
address or e-mail is stored in the cache in clear. When the cache does not
answer (Redis down), nothing is limited: the site keeps working.

Client addresses come from config.net.client_ip, never from a header read here.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from config.cache import count_event

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)s?\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int


def parse_rate(text: str) -> Rate:
    """A count per period (s, m, h, d): "20/hour", "5/min", "100/day", "3/10min"."""
    match = _RATE.match(text or "")
    if not match:
        raise ValueError(f"{text!r} is not a rate like 20/hour, 5/min or 3/10min")
    count, multiple, unit = int(match[1]), int(match[2] or 1), match[3][0]
    if count < 1 or multiple < 1:
        raise ValueError(f"{text!r} must allow at least 1 per at least 1 {match[3]}")
    return Rate(count=count, seconds=multiple * _SECONDS[unit])


@dataclass(frozen=True)
class Limit:
    """A count of `scope` events per key, at the rate the setting named `setting` says."""

    scope: str
    setting: str

    @property
    def rate(self) -> Rate | None:
        text = self.rate_text()
        return None if text is None else parse_rate(text)

    def rate_text(self) -> str | None:
        return getattr(settings, self.setting)

    def hit(self, key: str) -> int | None:
        """Count one event for `key`. None if it is within the limit; otherwise
        the seconds until the window ends (for Retry-After). One cache round
        trip (config/cache.py)."""
        rate = self.rate
        if rate is None:
            return None
        now = time.time()
        window = int(now // rate.seconds)
        digest = hashlib.sha256(f"{self.scope}:{key}".encode()).hexdigest()[:32]
        cache_key = f"limit:{self.scope}:{digest}:{window}"
        count = count_event(cache, cache_key, timeout=rate.seconds + 1)
        if count is None or count <= rate.count:  # None: the cache did not answer
            return None
        return max(1, int((window + 1) * rate.seconds - now))
