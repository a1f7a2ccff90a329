"""ParkSpot's own deploy checks (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def admin_two_factor(app_configs, **kwargs):
    if settings.ADMIN_REQUIRE_2FA:
        return []
    return [
        Warning(
            "Staff sign in to the admin with a password alone.",
            hint="Set ADMIN_REQUIRE_2FA=1 (staff set up an authenticator at /admin/two-factor/).",
            id="parkspot.W001",
        )
    ]


@register(Tags.security, deploy=True)
def metrics_open_to_all(app_configs, **kwargs):
    """/metrics tells how the business is doing: not for every address without a token."""
    import ipaddress

    if settings.METRICS_TOKEN:
        return []
    everyone = any(
        ipaddress.ip_network(part, strict=False).prefixlen == 0
        for part in settings.METRICS_ALLOWED_IPS
    )  # an empty list without a token lets nobody in
    if not everyone:
        return []
    return [
        Warning(
            "/metrics answers every address, with no token.",
            hint="List the scrapers' addresses in METRICS_ALLOWED_IPS, or set METRICS_TOKEN.",
            id="parkspot.W010",
        )
    ]
