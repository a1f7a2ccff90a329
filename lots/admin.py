"""Staff admin for lots, their spots and their rates."""

from __future__ import annotations

import zoneinfo

from django import forms
from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from lots.constants import VehicleType
from lots.models import Lot, Rate, Spot

# ISO 4217 currencies whose minor unit is not a hundredth.
_ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw", "pyg", "rwf", "ugx"}
_ZERO_DECIMAL |= {"vnd", "vuv", "xaf", "xof", "xpf"}
_THREE_DECIMAL = {"bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"}


def format_money(amount: int | None, currency: str) -> str:
    """`1250, "eur"` → `12.50 EUR`; `600, "jpy"` → `600 JPY` (the yen has no minor unit)."""
    if amount is None:
        return "—"
    code = currency.lower()
    places = 0 if code in _ZERO_DECIMAL else 3 if code in _THREE_DECIMAL else 2
    if places == 0:
        return f"{amount:,} {code.upper()}"
    whole, minor = divmod(amount, 10**places)
    return f"{whole:,}.{minor:0{places}} {code.upper()}"


def _spot_count_annotations() -> dict[str, Count]:
    return {
        f"spots_{vt}": Count("spots", filter=Q(spots__is_active=True, spots__vehicle_type=vt))
        for vt in VehicleType.values
    }


class LotAdminForm(forms.ModelForm):
    timezone = forms.ChoiceField(
        choices=[("", "---------")] + [(tz, tz) for tz in sorted(zoneinfo.available_timezones())],
        help_text="IANA name; times at this lot are shown in it.",
    )

    class Meta:
        model = Lot
        fields = (
            "name",
            "slug",
            "is_active",
            "address",
            "city",
            "latitude",
            "longitude",
            "timezone",
            "currency",
            "no_show_grace_minutes",
        )

    def clean_currency(self) -> str:
        # The table only accepts lower case; staff may well type "EUR".
        return (self.cleaned_data.get("currency") or "").strip().lower()


class RateInline(admin.TabularInline):
    model = Rate
    extra = 0
    fields = ("vehicle_type", "hourly_amount", "daily_max_amount")


@admin.register(Lot)
class LotAdmin(admin.ModelAdmin):
    form = LotAdminForm
    list_display = ("name", "slug", "city", "timezone", "currency", "is_active", "spot_counts")
    list_filter = ("city", "currency", "is_active")
    search_fields = ("name", "slug", "city")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("spot_counts", "availability_version", "created_at")
    inlines = [RateInline]
    fieldsets = [
        (None, {"fields": ("name", "slug", "is_active")}),
        ("Where", {"fields": ("address", "city", "latitude", "longitude", "timezone")}),
        ("Money and rules", {"fields": ("currency", "no_show_grace_minutes")}),
        ("Status", {"fields": ("spot_counts", "availability_version", "created_at")}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Lot]:
        # The counts come with the lots in one query: no query per row.
        return super().get_queryset(request).annotate(**_spot_count_annotations())

    @admin.display(description="Active spots (moto / car / van)")
    def spot_counts(self, lot: Lot) -> str:
        if lot.pk is None:
            return "—"
        if not hasattr(lot, "spots_car"):  # e.g. a lot re-read after saving
            counts = Lot.objects.filter(pk=lot.pk).aggregate(**_spot_count_annotations())
            for name, value in counts.items():
                setattr(lot, name, value)
        return " / ".join(str(getattr(lot, f"spots_{vt}")) for vt in VehicleType.values)


@admin.register(Spot)
class SpotAdmin(admin.ModelAdmin):
    list_display = ("label", "lot", "vehicle_type", "is_active")
    list_filter = ("vehicle_type", "is_active", "lot")
    search_fields = ("label", "public_id")
    list_select_related = ("lot",)
    list_editable = ("is_active",)
    readonly_fields = ("public_id",)
    autocomplete_fields = ("lot",)
    fields = ("lot", "label", "vehicle_type", "is_active", "public_id")


@admin.register(Rate)
class RateAdmin(admin.ModelAdmin):
    list_display = ("lot", "vehicle_type", "hourly", "daily_max")
    list_filter = ("vehicle_type", "lot__currency", "lot")
    search_fields = ("lot__name", "lot__slug")
    list_select_related = ("lot",)
    autocomplete_fields = ("lot",)
    fields = ("lot", "vehicle_type", "hourly_amount", "daily_max_amount")

    @admin.display(description="Per hour", ordering="hourly_amount")
    def hourly(self, rate: Rate) -> str:
        return format_money(rate.hourly_amount, rate.lot.currency)

    @admin.display(description="Daily maximum", ordering="daily_max_amount")
    def daily_max(self, rate: Rate) -> str:
        return format_money(rate.daily_max_amount, rate.lot.currency)
