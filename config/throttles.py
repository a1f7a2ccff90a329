"""Rate limits shared by the API and the website, keyed as config/net.py says.

Each limit is a setting (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], from the
environment): an operator, a load test or a partner integration raises it.
The website calls the same classes, so both doors share one count.
"""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from config.limits import Limit
from config.net import client_ip


class _ThrottleRate(Limit):
    def rate_text(self) -> str | None:
        # Read when asked, not when DRF was imported, so that a changed setting
        # (a test's, or a reloaded configuration) is the one applied.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


BOOKINGS_PER_DRIVER = _ThrottleRate("booking", "REST_FRAMEWORK")


class BookingThrottle(BaseThrottle):
    """Bookings made by one driver (by address before they are known), in the
    fixed windows of config/limits.py: one cache round trip a booking, where
    DRF's sliding log reads and writes the driver's whole history."""

    def __init__(self) -> None:
        self._wait: int | None = None

    def allow_request(self, request, view) -> bool:
        user = getattr(request, "user", None)
        known = user is not None and user.is_authenticated
        ident = f"user:{user.pk}" if known else f"address:{client_ip(request)}"
        self._wait = BOOKINGS_PER_DRIVER.hit(ident)
        return self._wait is None

    def wait(self) -> int | None:
        return self._wait


def retry_after(throttle: BaseThrottle, request: HttpRequest) -> int | None:
    """None while `request` is within the limit; else seconds until it is again
    (the website's way of asking what DRF asks for its views)."""
    if throttle.allow_request(request, None):
        return None
    wait = throttle.wait()
    return max(1, int(wait)) if wait is not None else 60
