"""The driver's language on the website: Django's LocaleMiddleware (the switcher's
cookie, then the browser's Accept-Language, then LANGUAGE_CODE), except on the
API and /metrics.

The API answers in English (codes and English sentences, DESIGN §6) and is the
hottest path (availability, booking): there the middleware only makes sure no
language is left active on the thread from an earlier request, with no header
parsing and no Vary or Content-Language header.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.utils import translation

# Paths answered in English only (startswith: one C call per request).
ENGLISH_ONLY_PREFIXES = ("/api/", "/metrics", "/healthz", "/readyz")


class LocaleMiddleware(DjangoLocaleMiddleware):
    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(ENGLISH_ONLY_PREFIXES):
            # A thread keeps the language it last activated: forget it, so
            # LANGUAGE_CODE (English) answers.
            translation.deactivate()
            return self.get_response(request)
        return super().__call__(request)
