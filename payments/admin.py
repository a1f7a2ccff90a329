"""Payments in the admin: read-only; money moves only through services."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from config.admin_input import AdminInputMixin, IndexedSearchMixin, users_by_email_start
from config.admin_paging import CappedCountMixin
from config.money import format_money
from payments.models import Payment, StripeCustomer, StripeEvent
from payments.views import HANDLED


def _money(amount: int, currency: str) -> str:
    return format_money(amount, currency, symbol=False)


class ReadOnlyAdmin(AdminInputMixin, admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class CurrencyFilter(admin.SimpleListFilter):
    """By currency, among those PaymentAdmin.currencies_hook names (reservations:
    its lots'); Django's filter listed every value in the table, a scan of every
    payment of the history on every page."""

    title = "currency"
    parameter_name = "currency"

    def lookups(self, request, model_admin):
        hook = type(model_admin).currencies_hook
        return [(code, code.upper()) for code in (hook() if hook else [])]

    def queryset(self, request, queryset):
        return queryset.filter(currency=self.value()) if self.value() else queryset


class StripeEventTypeFilter(admin.SimpleListFilter):
    """By type, among those the webhook acts on (any other by its parameter);
    Django's filter listed every type in the table, a scan of every event."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return [(kind, kind) for kind in sorted(HANDLED)]

    def queryset(self, request, queryset):
        return queryset.filter(type=self.value()) if self.value() else queryset


@admin.register(Payment)
class PaymentAdmin(CappedCountMixin, IndexedSearchMixin, ReadOnlyAdmin):
    """Payments know nothing of lots or reservations. Whoever makes payments for
    something may narrow what a user sees here: `scope_hook(request, queryset)`
    (reservations sets it, so that lot staff see their lots' payments only)."""

    scope_hook: ClassVar[Callable[[HttpRequest, QuerySet], QuerySet] | None] = None
    # What else a search term may name, as payment references (reservations:
    # a booking's code, however typed, names "reservation:<code>").
    reference_hook: ClassVar[Callable[[str], list[str]] | None] = None
    # The currencies to filter by (reservations: those of the lots).
    currencies_hook: ClassVar[Callable[[], list[str]] | None] = None

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
        CurrencyFilter,
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["reference", "payment_intent_id", "customer_id", "user__email"]
    search_help_text = (
        "Reference or reservation code, PaymentIntent or Customer id, or the start of"
        " the payer's e-mail."
    )
    list_select_related = ["user"]
    readonly_fields = [f.name for f in Payment._meta.fields] + ["reference_link"]

    def search_found(self, term: str) -> Q:
        # A reference as it is or as the hook reads the term, a PaymentIntent
        # id, the payer by Customer id or by the start of the e-mail: each an
        # index range ("contains" on four columns read every payment).
        hook = type(self).reference_hook
        references = [term, *(hook(term) if hook else [])]
        payers = users_by_email_start(term)
        payers += StripeCustomer.objects.filter(customer_id=term).values_list("user_id", flat=True)
        return Q(reference__in=references) | Q(payment_intent_id=term) | Q(user_id__in=payers)

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
class StripeEventAdmin(CappedCountMixin, IndexedSearchMixin, ReadOnlyAdmin):
    list_display = ["event_id", "type", "object_id", "received_at", "processed_at"]
    list_filter = [StripeEventTypeFilter, ("received_at", admin.DateFieldListFilter)]
    search_fields = ["event_id", "object_id"]
    search_help_text = "An event's id, or the id of what it is about (a PaymentIntent…)."

    def search_found(self, term: str) -> Q:
        # Ids are pasted whole: two index lookups ("contains" read every event).
        return Q(event_id=term) | Q(object_id=term)
