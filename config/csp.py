"""The Content-Security-Policy (django-csp 4): what pages may load, run, frame and call.

Every response carries settings.CONTENT_SECURITY_POLICY: our own static files and
nothing inline (no <script>, <style> or style="" in our templates; htmx is told not
to inject its indicator styles), no plugins, no framing by other sites, forms that
post only to ourselves. Two views widen it for themselves alone:

- the pay page loads Stripe.js (`allow_stripe_js`). Its sources come from
  settings.STRIPE_JS_URL when the page is served, so a test or a deployment that
  points Stripe.js elsewhere gets a matching policy: Stripe's own origins for
  https://js.stripe.com/v3/, or the one origin of a stand-in (localstripe serves
  its Stripe.js at <STRIPE_API_BASE>/js.stripe.com/v3/ and the script calls back
  the server it came from; it draws no frame).
- the API docs (Swagger UI, `allow_api_docs`): its inline style and start-up script
  by a per-response nonce (templates/drf_spectacular/swagger_ui.html), and the
  data: images its stylesheet uses.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from csp import middleware as csp_middleware
from csp.constants import HEADER, HEADER_REPORT_ONLY, NONCE
from csp.decorators import csp_update
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest
from django.http.response import HttpResponseBase

# Stripe.js served by Stripe, and what it needs (Stripe's integration security guide):
# the script and its helper scripts, the frames of card fields and 3-D Secure, the API.
STRIPE_JS_ORIGIN = "https://js.stripe.com"
STRIPE_SOURCES = {
    "script-src": [STRIPE_JS_ORIGIN, "https://*.js.stripe.com"],
    "frame-src": [STRIPE_JS_ORIGIN, "https://*.js.stripe.com", "https://hooks.stripe.com"],
    "connect-src": ["https://api.stripe.com"],
}


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def stripe_js_sources() -> dict[str, list[str]]:
    """What the pay page's Stripe.js may load, frame and call, from settings."""
    js = origin(settings.STRIPE_JS_URL)
    if js == STRIPE_JS_ORIGIN:
        return {directive: list(sources) for directive, sources in STRIPE_SOURCES.items()}
    # A stand-in (localstripe): one origin, for the script and the calls it makes.
    return {"script-src": [js], "connect-src": [js]}


def allow_stripe_js(view):
    """Widen the policy of a page that loads Stripe.js (the pay page) by its sources.

    Worked out on each request, from the settings then in force. Without a
    publishable key the page loads no Stripe.js, and the policy stays as it is.
    """

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not settings.STRIPE_PUBLISHABLE_KEY:
            return view(request, *args, **kwargs)
        return csp_update(stripe_js_sources())(view)(request, *args, **kwargs)

    return wrapped


# Swagger UI (drf-spectacular's page): its inline <style> and start-up <script> carry
# the response's nonce; its stylesheet draws icons from data: URIs.
allow_api_docs = csp_update(
    {"script-src": [NONCE], "style-src": [NONCE], "img-src": ["data:"]},
)


# --- the middleware -------------------------------------------------------------------------

_PER_RESPONSE = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_exempt",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
    "_csp_exempt_ro",
)
_built: dict[str, tuple[str, tuple[str, ...]]] = {}  # header -> (policy, excluded prefixes)


@receiver(setting_changed)
def _forget_policies(*, setting: str, **kwargs) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY") or setting == "DEBUG":
        _built.clear()


def _policy(report_only: bool) -> tuple[str, tuple[str, ...]]:
    header = HEADER_REPORT_ONLY if report_only else HEADER
    built = _built.get(header)
    if built is None:
        name = "CONTENT_SECURITY_POLICY_REPORT_ONLY" if report_only else "CONTENT_SECURITY_POLICY"
        prefixes = tuple((getattr(settings, name, None) or {}).get("EXCLUDE_URL_PREFIXES") or ())
        built = _built[header] = (build_policy(report_only=report_only), prefixes)
    return built


class CSPMiddleware(csp_middleware.CSPMiddleware):
    """django-csp's middleware, with the policy built once rather than on every
    response (two build_policy calls were ~8 % of a cached availability answer's
    CPU). Only for responses nothing widened: a view's csp_update/replace/exempt
    decorator or a nonce used by the page sends it down django-csp's own path."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase):
        if (
            getattr(request, "_csp_nonce", None) is not None
            or any(hasattr(response, name) for name in _PER_RESPONSE)
            or HEADER in response
            or HEADER_REPORT_ONLY in response
            or (response.status_code in (500, 404) and settings.DEBUG)
        ):
            return super().process_response(request, response)
        for report_only in (False, True):
            policy, prefixes = _policy(report_only)
            if policy and not request.path_info.startswith(prefixes):
                response[HEADER_REPORT_ONLY if report_only else HEADER] = policy
        # As django-csp does: a nonce asked for after the header is written is an error.
        request.csp_nonce = csp_middleware.CheckableLazyObject(self._csp_nonce_post_response)
        return response
