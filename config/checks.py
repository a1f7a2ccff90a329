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
