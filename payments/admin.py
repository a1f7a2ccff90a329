"""Payments in the admin: read-only; money moves only through services."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from config.admin_input import AdminInputMixin
from config.money import format_money
from payments.models import Payment, StripeCustomer, StripeEvent


def _money(amount: int, currency: str) -> str:
    return format_money(amount, currency, symbol=False)


class ReadOnlyAdmin(AdminInputMixin, admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    """Payments know nothing of lots or reservations. Whoever makes payments for
    something may narrow what a user sees here: `scope_hook(request, queryset)`
    (reservations sets it, so that lot staff see their lots' payments only)."""

    scope_hook: ClassVar[Callable[[HttpRequest, QuerySet], QuerySet] | None] = None

    list_display = [
        "reference_link",
        "kind",
        "status",
        "amount_display",
        "authorised",
        "captured",
        "refunded",
        "capture_mode",
        "operation",
        "updated_at",
    ]
    # A period by its bounds, not date_hierarchy's list of the years of every
    # row, which reads the whole table for every page on a long history.
    list_filter = [
        "status",
        "kind",
        "capture_mode",
        "currency",
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["reference", "payment_intent_id", "customer_id", "user__email"]
    list_select_related = ["user"]
    readonly_fields = [f.name for f in Payment._meta.fields] + ["reference_link"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Payment]:
        queryset = super().get_queryset(request)
        scope = type(self).scope_hook
        return scope(request, queryset) if scope else queryset

    def get_object(self, request: HttpRequest, object_id, from_field=None):
        payment = super().get_object(request, object_id, from_field)
        if payment is None and type(self).scope_hook and not request.user.is_superuser:
            # Out of scope and missing get the same answer.
            raise Http404("Not found.")
        return payment

    @admin.display(description="For", ordering="reference")
    def reference_link(self, payment: Payment) -> str:
        # References are opaque to payments; those of reservations carry the code.
        prefix, _, code = payment.reference.partition(":")
        if prefix != "reservation":
            return payment.reference
        url = reverse("admin:reservations_reservation_changelist") + "?" + urlencode({"q": code})
        return format_html('<a href="{}">Reservation {}</a>', url, code)

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, p: Payment) -> str:
        return _money(p.amount, p.currency)

    @admin.display(description="Authorised")
    def authorised(self, p: Payment) -> str:
        return _money(p.amount_authorised, p.currency)

    @admin.display(description="Captured")
    def captured(self, p: Payment) -> str:
        return _money(p.amount_captured, p.currency)

    @admin.display(description="Refunded")
    def refunded(self, p: Payment) -> str:
        return _money(p.amount_refunded, p.currency)


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdmin):
    list_display = ["customer_id", "user", "created_at"]
    search_fields = ["customer_id", "user__email"]
    list_select_related = ["user"]


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type", "object_id", "received_at", "processed_at"]
    list_filter = ["type", ("received_at", admin.DateFieldListFilter)]
    search_fields = ["event_id", "object_id"]
