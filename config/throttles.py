"""Rate limits shared by the API and the website, keyed as config/net.py says.

Each limit is a setting (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], from the
environment): an operator, a load test or a partner integration raises it.
The website calls the same classes, so both doors share one count.
"""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from config.net import client_ip


class BookingThrottle(SimpleRateThrottle):
    """Bookings made by one driver (by address before they are known)."""

    scope = "booking"

    def get_rate(self) -> str | None:
        # Read when asked, not when DRF was imported, so that a changed setting
        # (a test's, or a reloaded configuration) is the one applied.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view) -> str:
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else client_ip(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


def retry_after(throttle: SimpleRateThrottle, request: HttpRequest) -> int | None:
    """None while `request` is within the limit; else seconds until it is again
    (the website's way of asking what DRF asks for its views)."""
    if throttle.allow_request(request, None):
        return None
    wait = throttle.wait()
    return max(1, int(wait)) if wait is not None else 60
