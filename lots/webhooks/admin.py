"""Partner webhooks in the admin: a lot's endpoints and their delivery log,
scoped to the lots the staff user runs (LotScopedAdminMixin, as every lot admin).

Endpoints are written through lots/webhooks/services.py (the form validates,
the service saves); deliveries are records: read-only, with "retry now".
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from config.admin_input import AdminInputMixin
from config.errors import ApplicationError
from lots.admin import LotScopedAdminMixin, staff_lot_ids
from lots.webhooks.models import EVENT_TYPE_CHOICES, EVENT_TYPES, WebhookDelivery, WebhookEndpoint
from lots.webhooks.services import (
    delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
    webhook_test_send,
    webhook_url_check,
)


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        help_text=WebhookEndpoint._meta.get_field("url").help_text,
    )
    event_types = forms.MultipleChoiceField(
        choices=EVENT_TYPE_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        initial=list(EVENT_TYPES),
        help_text="The events this endpoint receives.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("lot", "url", "description", "event_types", "is_active")

    def clean_url(self) -> str:
        try:
            return webhook_url_check(self.cleaned_data.get("url", ""))
        except ApplicationError as exc:
            raise forms.ValidationError(exc.detail, code=exc.code) from None

    def clean(self):
        cleaned = super().clean()
        # The lot is read-only on an endpoint's page, so Django's own check of
        # (lot, url) leaves it out: checked here, as an error on the address.
        lot = cleaned.get("lot") or (self.instance.lot if self.instance.pk else None)
        url = cleaned.get("url")
        if lot is not None and url:
            taken = WebhookEndpoint.objects.filter(lot=lot, url=url).exclude(pk=self.instance.pk)
            if taken.exists():
                self.add_error("url", "This lot already has an endpoint at that address.")
        return cleaned


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AdminInputMixin, LotScopedAdminMixin, admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "lot", "description", "subscribed", "is_active", "log_link")
    list_filter = ("is_active", ("lot", admin.RelatedOnlyFieldListFilter))
    search_fields = ("url", "description")
    list_select_related = ("lot",)
    actions = ["send_test_event", "rotate_secret"]

    def get_fields(self, request: HttpRequest, obj: WebhookEndpoint | None = None):
        fields = ["lot", "url", "description", "event_types", "is_active"]
        if obj is not None:
            fields += ["signing_secret", "log_link", "created_at", "updated_at"]
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: WebhookEndpoint | None = None):
        if obj is None:
            return ()
        # An endpoint stays with its lot: its deliveries are that lot's events.
        return ("lot", "signing_secret", "log_link", "created_at", "updated_at")

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        initial = super().get_changeform_initial_data(request)
        lot_ids = staff_lot_ids(request)
        if lot_ids is not None and len(lot_ids) == 1:
            initial.setdefault("lot", next(iter(lot_ids)))
        return initial

    @admin.display(description="Events")
    def subscribed(self, endpoint: WebhookEndpoint) -> str:
        names = endpoint.event_types or []
        if set(names) == set(EVENT_TYPES):
            return "all"
        return ", ".join(name.removeprefix("reservation.") for name in names) or "none"

    @admin.display(description="Signing secret")
    def signing_secret(self, endpoint: WebhookEndpoint) -> str:
        return format_html(
            "<code>{}</code><br><span class='help'>Verify the ParkSpot-Signature header "
            "with it (docs/webhooks.md).</span>",
            endpoint.secret,
        )

    @admin.display(description="Delivery log")
    def log_link(self, endpoint: WebhookEndpoint) -> str:
        url = reverse("admin:lots_webhookdelivery_changelist")
        return format_html('<a href="{}?endpoint__id__exact={}">Deliveries</a>', url, endpoint.pk)

    def save_model(self, request, obj: WebhookEndpoint, form, change) -> None:
        data = form.cleaned_data
        fields = {
            "url": data["url"],
            "event_types": list(data["event_types"]),
            "description": data.get("description", ""),
            "is_active": data.get("is_active", False),
        }
        if change:
            saved = webhook_endpoint_update(endpoint_id=obj.pk, **fields)
        else:
            saved = webhook_endpoint_create(lot=data["lot"], **fields)
        obj.__dict__.update({f.attname: getattr(saved, f.attname) for f in saved._meta.fields})

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Staff turn an endpoint off; deleting it (and its log) is an operator's.
        return super().has_delete_permission(request, obj) and staff_lot_ids(request) is None

    @admin.action(description="Send a test event to selected endpoints", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        sent = [webhook_test_send(endpoint_id=endpoint.pk) for endpoint in queryset.order_by("pk")]
        self.message_user(
            request,
            f"Queued {len(sent)} test event{'s' if len(sent) != 1 else ''}: see the delivery log.",
            messages.SUCCESS,
        )

    @admin.action(
        description="Give selected endpoints a new signing secret", permissions=["change"]
    )
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset.order_by("pk"):
            webhook_endpoint_rotate_secret(endpoint_id=endpoint.pk)
            self.log_change(request, endpoint, "New signing secret.")
        self.message_user(
            request,
            "New signing secrets made: give them to the receivers (their pages show them).",
            messages.SUCCESS,
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AdminInputMixin, LotScopedAdminMixin, admin.ModelAdmin):
    """The delivery log: every event sent to an endpoint, its attempts and answer."""

    lot_lookup = "endpoint__lot_id"
    list_display = (
        "created_at",
        "event_type",
        "status",
        "attempts",
        "answer",
        "next_attempt_at",
        "delivered_at",
        "endpoint_url",
        "event_id",
    )
    list_filter = (
        "status",
        "event_type",
        ("endpoint", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("event_id",)
    list_select_related = ("endpoint",)
    fields = (
        "endpoint",
        "event_id",
        "event_type",
        "status",
        "attempts",
        "last_attempt_at",
        "last_response_code",
        "last_error",
        "next_attempt_at",
        "delivered_at",
        "created_at",
        "payload_json",
    )
    readonly_fields = fields
    actions = ["retry_now"]

    @admin.display(description="Last answer", ordering="last_response_code")
    def answer(self, delivery: WebhookDelivery) -> str:
        if delivery.last_response_code is not None:
            return f"HTTP {delivery.last_response_code}"
        return delivery.last_error[:40] or "—"

    @admin.display(description="Endpoint", ordering="endpoint__url")
    def endpoint_url(self, delivery: WebhookDelivery) -> str:
        return delivery.endpoint.url

    @admin.display(description="Payload")
    def payload_json(self, delivery: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(delivery.payload, indent=2))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # Whoever may change the lot's endpoints may send their events again.
        endpoints = self.admin_site.get_model_admin(WebhookEndpoint)
        return endpoints.has_change_permission(request)

    @admin.action(description="Retry selected deliveries now", permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        retried = [d for d in queryset.order_by("pk") if delivery_retry(delivery_id=d.pk)]
        if retried:
            self.message_user(
                request,
                f"{len(retried)} deliver{'ies' if len(retried) != 1 else 'y'} will be sent "
                "again within seconds.",
                messages.SUCCESS,
            )
        else:
            self.message_user(request, "Those were delivered already.", messages.WARNING)
