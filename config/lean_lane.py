"""The availability question's lane through the middleware.

GET /api/v1/lots/<lot>/availability is the public question every visitor asks
(reservations.api.AvailabilityApi). Asked by an API client, with no cookie and
no Authorization header, four middlewares have nothing to do for it: no session
to load or save (so no Set-Cookie or Vary), no user (the view authenticates
nobody), no flash messages. Yet each builds its per-request objects (the
session store, the lazy users, the message storages). Their lane versions below
step aside for such a request and behave exactly as Django's for every other
one; settings.py swaps them in (LEAN_LANE). CSRF's stays as it is: it costs
little here (the view is exempt), and Django's deploy checks look for it by name.

Everything that writes the answer's headers (security, CSP, Content-Length,
X-Frame-Options, the request id) and counts it (metrics, the request log) still
runs, in the same order: the bytes and headers are the same either way
(tests/test_lean_lane.py compares them).
"""

from __future__ import annotations

import re

from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthentication
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessages
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessions
from django.http import HttpRequest, HttpResponse
from django_otp.middleware import OTPMiddleware as DjangoOTP

_AVAILABILITY = re.compile(r"/api/v1/lots/[^/]+/availability")
_FLAG = "_in_lean_lane"


def in_lean_lane(request: HttpRequest) -> bool:
    """A cookie-less, credential-less GET of a lot's availability (worked out once)."""
    lane = request.__dict__.get(_FLAG)
    if lane is None:
        meta = request.META
        lane = (
            request.method == "GET"
            and not meta.get("HTTP_COOKIE")  # none, or empty: no session to look at
            and not meta.get("HTTP_AUTHORIZATION")
            and _AVAILABILITY.fullmatch(request.path_info) is not None
        )
        request.__dict__[_FLAG] = lane
    return lane


class _StepsAside:
    """Mixed in before a middleware: in the lane, straight on to the next one."""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if in_lean_lane(request):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_StepsAside, DjangoSessions):
    pass


class AuthenticationMiddleware(_StepsAside, DjangoAuthentication):
    pass


class OTPMiddleware(_StepsAside, DjangoOTP):
    pass


class MessageMiddleware(_StepsAside, DjangoMessages):
    pass
