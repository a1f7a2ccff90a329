"""Password guessing is limited on every door that checks a password: the
website's log-in, the admin's log-in and POST /api/v1/auth/token.

django-axes does the counting (settings: LOGIN_FAILURE_LIMIT failures per account
or per client address, then LOGIN_COOLOFF_MINUTES of refusal). This module is
what axes is configured with: whose account an attempt is for, how long the
cool-off lasts, the handler that counts in the shared cache, and the answer a
locked-out client gets (a page on the website and in the admin, JSON under
/api/).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.handlers.cache import AxesCacheHandler
from axes.helpers import get_cache
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from redis.exceptions import RedisError

from config.api import error_body

LOCKED_OUT_CODE = "too_many_login_attempts"


def failure_limit(request: HttpRequest | None = None, credentials: dict | None = None) -> int:
    return settings.LOGIN_FAILURE_LIMIT


def cool_off(request: HttpRequest | None = None) -> timedelta:
    return timedelta(minutes=settings.LOGIN_COOLOFF_MINUTES)


def cool_off_seconds() -> int:
    return int(cool_off().total_seconds())


def locked_out_sentence() -> str:
    minutes = settings.LOGIN_COOLOFF_MINUTES
    return (
        "Too many log-in attempts failed for this account or from this network, so "
        f"logging in is paused for {minutes} minute{'' if minutes == 1 else 's'}. "
        "Try again later, or reset your password."
    )


def attempted_email(request: HttpRequest | None, credentials: dict | None) -> str | None:
    """The account an attempt is for, as axes counts it: the e-mail address as
    log-in matches it (any case, outer spaces ignored), so that writing it
    differently does not start a new count."""
    value: Any = None
    if credentials:
        value = credentials.get("username") or credentials.get("email")
    if value is None and request is not None:
        data = getattr(request, "POST", None) or {}
        value = data.get("username") or data.get("email")
    if not isinstance(value, str):
        return None
    return value.strip().lower()[:254] or None


class _FailOpenCounters:
    """The cache as axes counts in it. When the cache does not answer (Redis down,
    IGNORE_EXCEPTIONS on) an increment comes back as None and touch() raises, on
    which axes itself would fail with a 500: count nothing instead, as a cache
    miss does elsewhere (logging in then works as if no limit were set)."""

    def __init__(self, cache) -> None:
        self._cache = cache

    def __getattr__(self, name: str):
        return getattr(self._cache, name)

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        try:
            value = self._cache.incr(key, delta, version=version)
        except ValueError:  # the count lapsed between axes adding and incrementing it
            self._cache.add(key, delta, version=version)
            return delta
        return 0 if value is None else value

    def touch(self, key: str, timeout: int | None = None, version: int | None = None) -> bool:
        try:
            return self._cache.touch(key, timeout, version=version)
        except RedisError:  # django-redis lets touch()'s connection errors through
            return False


class LoginAttemptsHandler(AxesCacheHandler):
    """axes' cache handler, reading the cache afresh each time (so that it follows
    the settings, and each thread uses its own connection) and failing open."""

    def __init__(self) -> None:  # no cache is bound here: see `cache`
        pass

    @property
    def cache(self) -> _FailOpenCounters:
        return _FailOpenCounters(get_cache())


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials=None
) -> HttpResponse:
    """What a locked-out attempt is answered: 429 with Retry-After, and a sentence
    that says what happened and what to do."""
    sentence = locked_out_sentence()
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(error_body(LOCKED_OUT_CODE, sentence), status=429)
    elif request.path.startswith(reverse("admin:index")):
        context = {**admin.site.each_context(request), "sentence": sentence}
        response = render(request, "admin/locked_out.html", context, status=429)
    else:
        response = render(
            request, "registration/locked_out.html", {"sentence": sentence}, status=429
        )
    response["Retry-After"] = str(cool_off_seconds())
    return response
