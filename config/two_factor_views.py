"""The page where staff set up their authenticator app (see config/two_factor.py)."""

from __future__ import annotations

import segno
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from config.errors import ApplicationError
from config.two_factor import has_two_factor, totp_device_begin, totp_device_confirm


@require_http_methods(["GET", "POST"])
@login_required(login_url="admin:login")
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise Http404("Not found.")
    error = ""
    if request.method == "POST":
        try:
            totp_device_confirm(request=request, token=request.POST.get("code", ""))
        except ApplicationError as exc:
            error = exc.detail
        else:
            return redirect("admin:index")
    device = totp_device_begin(user=request.user)
    qr = segno.make_qr(device.config_url, error="m").svg_inline(
        scale=4, border=2, title="QR code to scan with an authenticator app"
    )
    context = {
        "title": "Two-factor sign-in",
        "site_header": "ParkSpot staff",
        "has_permission": False,
        "qr": mark_safe(qr),  # noqa: S308  (segno's own SVG; the title is escaped by segno)
        "secret": device.config_url.split("secret=")[1].split("&")[0],
        "already": has_two_factor(request.user),
        "error": error,
    }
    return TemplateResponse(
        request, "admin/two_factor/setup.html", context, status=400 if error else 200
    )
