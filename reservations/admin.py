"""Staff admin for reservations: read-only records, changed only through services.

A reservation's status, money and times move only along the state machine in
reservations/services.py, so the admin shows them and offers the one staff
transition (cancel) as an action that calls the service.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.errors import ApplicationError
from lots.admin import format_money
from reservations.models import Actor, IdempotencyKey, Reservation, ReservationEvent
from reservations.services import reservation_cancel


class ReadOnlyAdminMixin:
    """Nothing is added, edited or deleted here: the rows are records."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ReservationEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ReservationEvent
    extra = 0
    fields = ("at", "from_status", "to_status", "actor", "actor_user", "data")
    readonly_fields = fields
    ordering = ("at", "id")
    verbose_name = "event"
    verbose_name_plural = "Audit trail"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReservationEvent]:
        return super().get_queryset(request).select_related("actor_user")


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "lot",
        "spot_label",
        "vehicle_type",
        "status",
        "start",
        "end",
        "price",
        "created_at",
    )
    list_filter = ("status", "lot", "vehicle_type")
    date_hierarchy = "start"
    search_fields = ("code", "vehicle_plate", "user__email")
    search_help_text = "Code, number plate or driver's e-mail."
    list_select_related = ("lot", "spot", "user")
    # Counting every row of a large table on each page is slow; not needed here.
    show_full_result_count = False
    ordering = ("-start",)
    inlines = [ReservationEventInline]
    actions = ["cancel_reservations"]
    fieldsets = [
        (None, {"fields": ("code", "status", "user", "vehicle_type", "vehicle_plate")}),
        ("Where", {"fields": ("lot", "spot")}),
        (
            "When (UTC)",
            {
                "fields": (
                    "start",
                    "end",
                    "local_window",
                    "occupied_until",
                    "hold_expires_at",
                    "arrived_at",
                    "departed_at",
                )
            },
        ),
        ("Money", {"fields": ("price",)}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    ]
    readonly_fields = (
        "code",
        "status",
        "user",
        "vehicle_type",
        "vehicle_plate",
        "lot",
        "spot",
        "start",
        "end",
        "local_window",
        "occupied_until",
        "hold_expires_at",
        "arrived_at",
        "departed_at",
        "price",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Reservations are made through the booking service (allocation, holds).
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Deleting would erase the audit trail; cancel instead.
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Every field is read-only: no save buttons that would do nothing.
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="Spot", ordering="spot__label")
    def spot_label(self, reservation: Reservation) -> str:
        return reservation.spot.label

    @admin.display(description="Price", ordering="price_amount")
    def price(self, reservation: Reservation) -> str:
        return format_money(reservation.price_amount, reservation.currency)

    @admin.display(description="Window in the lot's time zone")
    def local_window(self, reservation: Reservation) -> str:
        tz = reservation.lot.tz
        start, end = reservation.start.astimezone(tz), reservation.end.astimezone(tz)
        return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} ({reservation.lot.timezone})"

    @admin.action(description="Cancel selected reservations", permissions=["change"])
    def cancel_reservations(self, request: HttpRequest, queryset: QuerySet[Reservation]) -> None:
        # One service call (one transaction) per reservation: one that cannot be
        # cancelled is reported and does not stop the others.
        for reservation in queryset.order_by("pk"):
            try:
                result = reservation_cancel(
                    reservation_id=reservation.pk, actor=Actor.STAFF, actor_user=request.user
                )
            except ApplicationError as exc:
                self.message_user(
                    request, f"{reservation.code}: not cancelled. {exc.detail}", messages.ERROR
                )
                continue
            if result.changed:
                self.message_user(request, f"{reservation.code}: cancelled.", messages.SUCCESS)
            else:
                self.message_user(
                    request, f"{reservation.code}: was already cancelled.", messages.WARNING
                )


@admin.register(ReservationEvent)
class ReservationEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("reservation", "from_status", "to_status", "actor", "actor_user", "at")
    list_filter = ("actor", "to_status")
    search_fields = ("reservation__code", "actor_user__email")
    list_select_related = ("reservation", "actor_user")
    date_hierarchy = "at"
    show_full_result_count = False
    fields = ("reservation", "at", "from_status", "to_status", "actor", "actor_user", "data")
    readonly_fields = fields


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("key", "user", "reservation", "created_at")
    search_fields = ("key", "user__email", "reservation__code")
    list_select_related = ("user", "reservation")
    fields = ("key", "user", "reservation", "fingerprint", "created_at")
    readonly_fields = fields
