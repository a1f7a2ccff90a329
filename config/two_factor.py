"""Two-factor sign-in to the admin (TOTP, with django-otp).

With ADMIN_REQUIRE_2FA on (production), staff and superusers get into the admin
only with their password and a six-digit code from an authenticator app. They
set the app up once at /admin/two-factor/, after signing in with their password:
scan the QR code, type a code to prove it works.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.admin import OTPAdminAuthenticationForm
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.errors import Conflict, InvalidInput

DEVICE_NAME = "Authenticator app"


class StaffLoginForm(OTPAdminAuthenticationForm):
    """E-mail, password and the code: each person has one authenticator, so
    there is no device to choose."""

    def _chosen_device(self, user):
        return super()._chosen_device(user) or (
            TOTPDevice.objects.filter(user=user, confirmed=True).first()
        )


class TwoFactorAdminSite(admin.AdminSite):
    """Django's admin site, which asks for a code too when ADMIN_REQUIRE_2FA is on."""

    @property
    def login_form(self):
        return StaffLoginForm if settings.ADMIN_REQUIRE_2FA else None

    @property
    def login_template(self):
        return "admin/two_factor/login.html" if settings.ADMIN_REQUIRE_2FA else None

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        return not settings.ADMIN_REQUIRE_2FA or request.user.is_verified()


def totp_device_begin(*, user) -> TOTPDevice:
    """The staff member's authenticator set-up, made on first visit and shown
    until confirmed: a new secret each time it is started again."""
    if not user.is_staff:
        raise Conflict("Two-factor sign-in is for lot staff.", code="not_staff")
    with transaction.atomic():
        device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
    return device


def totp_device_confirm(*, request: HttpRequest, token: str) -> TOTPDevice:
    """Confirm the set-up with a code from the app; the session is then verified."""
    user = request.user
    token = (token or "").strip().replace(" ", "")
    if not token.isdigit() or len(token) != 6:
        raise InvalidInput("Type the six digits your app shows.", code="invalid_code")
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
        if device is None:
            raise Conflict("Start the set-up again.", code="no_setup_in_progress")
        if not device.verify_token(token):
            raise InvalidInput(
                "That code is not right: check the phone's clock, and type the newest code.",
                code="wrong_code",
            )
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        # One authenticator per person: earlier ones stop working.
        TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk).delete()
    otp_login(request, device)
    return device


def has_two_factor(user) -> bool:
    return user_has_device(user, confirmed=True)
