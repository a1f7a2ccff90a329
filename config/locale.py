"""The driver's language on the website: Django's LocaleMiddleware (the switcher's
cookie, then the browser's Accept-Language, then LANGUAGE_CODE), except on the
API and /metrics.

The API answers in English (codes and English sentences, DESIGN §6) and is the
hottest path (availability, booking): there the middleware does nothing but one
`startswith` (no header parsing, no Vary or Content-Language header). For that, a
page leaves the thread as it found it (no language active, so LANGUAGE_CODE):
the language lives in a thread-local that Django never resets, and the next
request on the thread may be an API one. (Resetting it there instead would cost
every API request about 10 µs: asgiref's Local is slow to touch.)
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
            return self.get_response(request)
        try:
            return super().__call__(request)
        finally:
            translation.deactivate()
