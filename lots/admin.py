"""Staff admin for lots, their spots, rates and gates, scoped to the lots a user staffs.

Lot staff (LotStaff) see and change only their lots and what belongs to them;
superusers see everything. LotScopedAdminMixin enforces it in querysets (lists,
searches, filters, autocompletes, actions), object permissions (another lot's
object by URL is a 404) and foreign-key choices; reservations/admin.py and
payments use it too.

What needs reservations (taking a spot out of service, the occupancy view) is
added to LotAdmin and SpotAdmin by reservations/admin.py: lots does not import
reservations.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html_join
from django.views.decorators.cache import never_cache

from config.admin_input import AdminInputMixin
from config.errors import ApplicationError
from config.money import format_money
from lots.constants import VehicleType
from lots.features import FEATURE_FIELDS, SpotFeature, spot_features
from lots.models import GateDevice, Lot, LotStaff, OpeningHours, Rate, RateRule, Spot
from lots.selectors import lot_ids_for_staff, rate_rule_preview
from lots.services import (
    MAX_SPOTS_PER_CALL,
    gate_create,
    gate_revoke,
    lot_availability_changed,
    rate_rule_delete,
    rate_rule_save,
    spot_return_to_service,
    spots_add,
)


def admin_money(amount: int | None, currency: str) -> str:
    """Money as the admin shows it: `12.50 EUR`, `1,200 JPY`, a dash when unknown."""
    return format_money(amount, currency, symbol=False) or "—"


# --- scoping ------------------------------------------------------------------------------


def staff_lot_ids(request: HttpRequest) -> frozenset[int] | None:
    """The lots this request's user may see in the admin; None means every lot
    (an active superuser). Asked once per request."""
    user = request.user
    if user.is_active and user.is_superuser:
        return None
    if not hasattr(request, "_staff_lot_ids"):
        request._staff_lot_ids = lot_ids_for_staff(user)
    return request._staff_lot_ids


class StaffLotFilter(admin.RelatedFieldListFilter):
    """Filter by lot, among the lots the user runs (every lot for a superuser),
    read from the lots table. Django's RelatedOnlyFieldListFilter asks the listed
    table which lots it mentions: on reservations, a scan of the whole history
    on every page (1 s on a year of it)."""

    def field_choices(self, field, request, model_admin):
        lot_ids = staff_lot_ids(request)
        return field.get_choices(
            include_blank=False,
            limit_choices_to=None if lot_ids is None else {"pk__in": lot_ids},
            ordering=self.field_admin_ordering(field, request, model_admin),
        )


class LotScopedAdminMixin:
    """Only what belongs to the user's lots, for everyone but superusers.

    `lot_lookup` is the path from the model to its lot's id. Models that reach
    their lot in another way override `scope_queryset`.
    """

    lot_lookup = "lot_id"

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        lot_ids = staff_lot_ids(request)
        if lot_ids is None:
            return queryset
        return queryset.filter(**{f"{self.lot_lookup}__in": lot_ids})

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scope_queryset(request, super().get_queryset(request))

    def in_scope(self, request: HttpRequest, obj) -> bool:
        if obj is None or staff_lot_ids(request) is None:
            return True
        if obj.pk is None:
            return False
        checked = request.__dict__.setdefault("_lot_scope_checked", {})
        key = (self.model._meta.label, obj.pk)
        if key not in checked:
            rows = self.model._default_manager.filter(pk=obj.pk)
            checked[key] = self.scope_queryset(request, rows).exists()
        return checked[key]

    def get_object(self, request: HttpRequest, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None and staff_lot_ids(request) is not None:
            # Another lot's object and a missing one get the same answer.
            raise Http404("Not found.")
        return obj

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_view_permission(request, obj) and self.in_scope(request, obj)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_change_permission(request, obj) and self.in_scope(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and self.in_scope(request, obj)

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        lot_ids = staff_lot_ids(request)
        if lot_ids is not None and "queryset" not in kwargs:
            if db_field.related_model is Lot:
                kwargs["queryset"] = Lot.objects.filter(pk__in=lot_ids)
            elif db_field.related_model is Spot:
                kwargs["queryset"] = Spot.objects.filter(lot_id__in=lot_ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class OfferChangesMixin:
    """Saving or deleting here changes what a lot offers (its spots, its rates):
    cached availability answers end in the same transaction (the admin runs
    each save in one)."""

    def _offer_changed(self, lot_ids) -> None:
        for lot_id in sorted(set(lot_ids)):
            lot_availability_changed(lot_id=lot_id)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        self._offer_changed([obj.pk if isinstance(obj, Lot) else obj.lot_id])

    def delete_model(self, request, obj) -> None:
        lot_id = obj.pk if isinstance(obj, Lot) else obj.lot_id
        super().delete_model(request, obj)
        if not isinstance(obj, Lot):
            self._offer_changed([lot_id])

    def delete_queryset(self, request, queryset) -> None:
        lot_ids = [] if queryset.model is Lot else list(queryset.values_list("lot_id", flat=True))
        super().delete_queryset(request, queryset)
        self._offer_changed(lot_ids)

    def save_formset(self, request, form, formset, change) -> None:
        super().save_formset(request, form, formset, change)
        self._offer_changed([form.instance.pk])


def scoped_object_or_404(model_admin, request: HttpRequest, object_id: str):
    """The object for a custom admin view, by the same rules as the change page."""
    obj = model_admin.get_object(request, unquote(object_id))
    if obj is None:
        raise Http404("Not found.")
    if not model_admin.has_view_permission(request, obj):
        raise PermissionDenied
    return obj


def log_additions(request: HttpRequest, objects: list, message: str) -> None:
    """Admin log entries for objects a service created in bulk."""
    if objects:
        LogEntry.objects.log_actions(
            user_id=request.user.pk, queryset=objects, action_flag=ADDITION, change_message=message
        )


# --- lots ---------------------------------------------------------------------------------


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
            "height_limit_cm",
            "entry_instructions",
        )

    def clean_currency(self) -> str:
        # The table only accepts lower case; staff may well type "EUR".
        return (self.cleaned_data.get("currency") or "").strip().lower()


class RateInline(admin.TabularInline):
    model = Rate
    extra = 0
    fields = ("vehicle_type", "hourly_amount", "daily_max_amount")


class OpeningHoursInline(admin.TabularInline):
    """A row per day the lot opens; none at all: open 24/7 (a day without a row
    is closed once there are rows). Bookings outside these hours are refused."""

    model = OpeningHours
    extra = 0
    max_num = 7
    fields = ("weekday", "opens", "closes")
    verbose_name_plural = (
        "Opening hours (local time; no rows: open 24/7; a day without a row is closed; "
        "closing at 00:00 means midnight)"
    )


class LotStaffInline(admin.TabularInline):
    """Who runs the lot. Only users with permissions on LotStaff (superusers)
    see it: staff do not choose their own colleagues."""

    model = LotStaff
    extra = 0
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)
    verbose_name_plural = "Staff of this lot"

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "user":
            model = db_field.related_model
            kwargs["queryset"] = model._default_manager.filter(is_staff=True).order_by("email")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


SPOT_FEATURE_FIELDS = (*FEATURE_FIELDS.values(), "max_height_cm")


class AddSpotsForm(forms.Form):
    vehicle_type = forms.ChoiceField(choices=VehicleType.choices)
    count = forms.IntegerField(
        min_value=1, max_value=MAX_SPOTS_PER_CALL, help_text="How many spots to add."
    )
    prefix = forms.CharField(
        max_length=10,
        help_text="Labels are PREFIX-NNN, numbered on from the highest label with this "
        "prefix (e.g. C-041, C-042…).",
    )
    # What every spot of the batch offers (lots/features.py).
    has_ev_charging = forms.BooleanField(label="EV charging", required=False)
    is_accessible = forms.BooleanField(label="Accessible", required=False)
    is_covered = forms.BooleanField(label="Covered", required=False)
    max_height_cm = forms.IntegerField(
        label="Maximum vehicle height (cm)",
        required=False,
        min_value=100,
        max_value=1000,
        help_text="Empty: whatever the lot's own height limit allows.",
    )


_DEFAULT_PREFIX = {VehicleType.MOTORCYCLE: "M", VehicleType.CAR: "C", VehicleType.VAN: "V"}


@admin.register(Lot)
class LotAdmin(AdminInputMixin, OfferChangesMixin, LotScopedAdminMixin, admin.ModelAdmin):
    lot_lookup = "pk"
    form = LotAdminForm
    # Explicit: the spot-count annotation groups rows, which drops Meta.ordering
    # (and an unordered autocomplete cannot be paginated).
    ordering = ("name", "pk")
    list_display = (
        "name",
        "slug",
        "city",
        "timezone",
        "currency",
        "is_active",
        "spot_counts",
        "tools",
    )
    list_filter = ("city", "currency", "is_active")
    search_fields = ("name", "slug", "city")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("spot_counts", "availability_version", "created_at")
    inlines = [RateInline, OpeningHoursInline, LotStaffInline]
    fieldsets = [
        (None, {"fields": ("name", "slug", "is_active")}),
        ("Where", {"fields": ("address", "city", "latitude", "longitude", "timezone")}),
        ("Access", {"fields": ("height_limit_cm", "entry_instructions")}),
        ("Money and rules", {"fields": ("currency", "no_show_grace_minutes")}),
        ("Status", {"fields": ("spot_counts", "availability_version", "created_at")}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Lot]:
        # The counts come with the lots in one query: no query per row.
        return super().get_queryset(request).annotate(**_spot_count_annotations())

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Opening a lot is an operator's decision; staff run the lots they have.
        return super().has_add_permission(request) and staff_lot_ids(request) is None

    def get_readonly_fields(self, request: HttpRequest, obj: Lot | None = None):
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and staff_lot_ids(request) is not None:
            # The lot's public id and the currency its prices are in are the
            # operator's: changing them breaks links and every price.
            fields += ("slug", "currency")
        return fields

    def get_prepopulated_fields(self, request: HttpRequest, obj: Lot | None = None):
        if "slug" in self.get_readonly_fields(request, obj):
            return {}
        return super().get_prepopulated_fields(request, obj)

    # What apps that know more of a lot add to its admin (reservations: the
    # occupancy view and its link), without lots importing them and without
    # re-registering this admin: (route under a lot, view(admin, request,
    # object_id), URL name) and lot -> [(url, label)].
    view_hooks: ClassVar[list[tuple[str, Callable, str]]] = []
    link_hooks: ClassVar[list[Callable[[Lot], list[tuple[str, str]]]]] = []
    # Views over all the user's lots (route, view(admin, request), URL name),
    # and links that only a lot's own page shows (they may cost a query).
    list_view_hooks: ClassVar[list[tuple[str, Callable, str]]] = []
    page_link_hooks: ClassVar[list[Callable[[HttpRequest, Lot], list[tuple[str, str]]]]] = []

    def get_urls(self):
        own = [
            *(
                path(f"{route}/", self.admin_site.admin_view(partial(view, self)), name=name)
                for route, view, name in self.list_view_hooks
            ),
            path(
                "<path:object_id>/add-spots/",
                self.admin_site.admin_view(self.add_spots_view),
                name="lots_lot_add_spots",
            ),
            *(
                path(
                    f"<path:object_id>/{route}/",
                    self.admin_site.admin_view(partial(view, self)),
                    name=name,
                )
                for route, view, name in self.view_hooks
            ),
        ]
        return own + super().get_urls()

    # Links to what staff do with a lot, on its row and its page.
    def lot_links(self, request: HttpRequest | None, lot: Lot) -> list[tuple[str, str]]:
        links = [link for hook in self.link_hooks for link in hook(lot)]
        if request is not None:
            links += [link for hook in self.page_link_hooks for link in hook(request, lot)]
        links += [
            (reverse("admin:lots_spot_changelist") + f"?lot__id__exact={lot.pk}", "Spots"),
            (reverse("admin:lots_lot_add_spots", args=[lot.pk]), "Add spots"),
            (reverse("admin:lots_gatedevice_changelist") + f"?lot__id__exact={lot.pk}", "Gates"),
            (reverse("admin:lots_raterule_changelist") + f"?lot__id__exact={lot.pk}", "Flex rates"),
        ]
        return links

    @admin.display(description="Run the lot")
    def tools(self, lot: Lot) -> str:
        try:
            links = self.lot_links(None, lot)
        except NoReverseMatch:  # pragma: no cover (an admin site without the views)
            return "—"
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        lot = self.get_object(request, unquote(object_id))
        if lot is not None:
            extra_context = {**(extra_context or {}), "lot_links": self.lot_links(request, lot)}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="Active spots (moto / car / van)")
    def spot_counts(self, lot: Lot) -> str:
        if lot.pk is None:
            return "—"
        if not hasattr(lot, "spots_car"):  # e.g. a lot re-read after saving
            counts = Lot.objects.filter(pk=lot.pk).aggregate(**_spot_count_annotations())
            for name, value in counts.items():
                setattr(lot, name, value)
        return " / ".join(str(getattr(lot, f"spots_{vt}")) for vt in VehicleType.values)

    def add_spots_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        lot = scoped_object_or_404(self, request, object_id)
        spot_admin = self.admin_site.get_model_admin(Spot)
        if not spot_admin.has_add_permission(request):
            raise PermissionDenied
        vehicle_type = request.GET.get("vehicle_type", VehicleType.CAR)
        form = AddSpotsForm(
            request.POST or None,
            initial={
                "vehicle_type": vehicle_type,
                "count": 10,
                "prefix": _DEFAULT_PREFIX.get(vehicle_type, "S"),
            },
        )
        if request.method == "POST" and form.is_valid():
            try:
                spots = spots_add(lot=lot, **form.cleaned_data)
            except ApplicationError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
            else:
                kind = VehicleType(form.cleaned_data["vehicle_type"]).label.lower()
                message = (
                    f"Added {len(spots)} {kind} spot{'s' if len(spots) != 1 else ''}: "
                    f"{spots[0].label} to {spots[-1].label}."
                )
                self.log_change(request, lot, message)
                log_additions(request, spots, f"Added with {len(spots) - 1} others to {lot}.")
                self.message_user(request, message, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:lots_lot_change", args=[lot.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Add spots to {lot}",
            "subtitle": None,
            "opts": self.model._meta,
            "original": lot,
            "lot": lot,
            "form": form,
            "spot_counts": self.spot_counts(lot),
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/lots/lot/add_spots.html", context)


# --- spots --------------------------------------------------------------------------------


class SpotAdminForm(forms.ModelForm):
    class Meta:
        model = Spot
        fields = ("lot", "label", "vehicle_type", "is_active", *SPOT_FEATURE_FIELDS)

    def clean(self):
        cleaned = super().clean()
        # On a spot's page its lot is read-only, so not a form field, and Django
        # leaves (lot, label) out of its uniqueness check: the database refused
        # a label the lot already has (500). Checked here, as an error on the label.
        lot = cleaned.get("lot") or (self.instance.lot if self.instance.pk else None)
        label = cleaned.get("label")
        if lot is not None and label:
            taken = Spot.objects.filter(lot=lot, label=label).exclude(pk=self.instance.pk)
            if taken.exists():
                self.add_error(
                    "label",
                    forms.ValidationError(
                        "%(lot)s already has a spot labelled %(label)s.",
                        code="unique",
                        params={"lot": lot, "label": label},
                    ),
                )
        return cleaned


@admin.register(Spot)
class SpotAdmin(AdminInputMixin, OfferChangesMixin, LotScopedAdminMixin, admin.ModelAdmin):
    list_filter = (
        "vehicle_type",
        "is_active",
        "has_ev_charging",
        "is_accessible",
        "is_covered",
        ("max_height_cm", admin.EmptyFieldListFilter),
        ("lot", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("label", "public_id")
    list_select_related = ("lot",)
    form = SpotAdminForm
    readonly_fields = ("public_id",)
    autocomplete_fields = ("lot",)
    # Changing a spot's features moves no booking: one already on the spot keeps it.
    fields = ("lot", "label", "vehicle_type", "is_active", *SPOT_FEATURE_FIELDS, "public_id")

    # What apps that keep things on spots add here (reservations: how many are
    # to come, and taking a spot out of service, which moves them): admin
    # actions, and columns as (display function, queryset annotation).
    action_hooks: ClassVar[list[Callable]] = []
    column_hooks: ClassVar[list[tuple[Callable, Callable[[QuerySet], QuerySet]]]] = []

    @property
    def list_display(self) -> tuple:
        return (
            "label",
            "lot",
            "vehicle_type",
            "is_active",
            "features",
            *(c for c, _ in self.column_hooks),
        )

    @admin.display(description="Features")
    def features(self, spot: Spot) -> str:
        names = [str(SpotFeature(name).label) for name in spot_features(spot)]
        if spot.max_height_cm is not None:
            names.append(f"max {spot.max_height_cm} cm")
        return ", ".join(names) or "—"

    @property
    def actions(self) -> list:
        return [*self.action_hooks, "return_to_service"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Spot]:
        queryset = super().get_queryset(request)
        for _, annotate in self.column_hooks:
            queryset = annotate(queryset)
        return queryset

    def get_readonly_fields(self, request: HttpRequest, obj: Spot | None = None):
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None:
            # A spot's reservations are for its lot and its vehicle type, and
            # taking it out of service must deal with them (the actions do): so
            # these three change only through the actions, never by typing.
            fields += ("lot", "vehicle_type", "is_active")
        return fields

    @admin.action(description="Put selected spots back in service", permissions=["change"])
    def return_to_service(self, request: HttpRequest, queryset: QuerySet[Spot]) -> None:
        back = []
        for spot in queryset.filter(is_active=False).order_by("lot", "label"):
            if spot_return_to_service(spot_id=spot.pk):
                self.log_change(request, spot, "Put back in service.")
                back.append(spot.label)
        if back:
            self.message_user(request, f"Back in service: {', '.join(back)}.", messages.SUCCESS)
        else:
            self.message_user(request, "Those spots were in service already.", messages.WARNING)


# --- rates --------------------------------------------------------------------------------


@admin.register(Rate)
class RateAdmin(AdminInputMixin, OfferChangesMixin, LotScopedAdminMixin, admin.ModelAdmin):
    list_display = ("lot", "vehicle_type", "hourly", "daily_max")
    list_filter = ("vehicle_type", "lot__currency", ("lot", admin.RelatedOnlyFieldListFilter))
    search_fields = ("lot__name", "lot__slug")
    list_select_related = ("lot",)
    autocomplete_fields = ("lot",)
    fields = ("lot", "vehicle_type", "hourly_amount", "daily_max_amount")

    @admin.display(description="Per hour", ordering="hourly_amount")
    def hourly(self, rate: Rate) -> str:
        return admin_money(rate.hourly_amount, rate.lot.currency)

    @admin.display(description="Daily maximum", ordering="daily_max_amount")
    def daily_max(self, rate: Rate) -> str:
        return admin_money(rate.daily_max_amount, rate.lot.currency)


# --- flex rates (issue #15) ------------------------------------------------------------------

_LOCAL_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
_LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]


def _local_field(label: str, help_text: str) -> forms.DateTimeField:
    # Naive on purpose: read in the lot's time zone (TIME_ZONE is UTC).
    return forms.DateTimeField(
        label=label,
        required=False,
        widget=_LOCAL_INPUT,
        input_formats=_LOCAL_FORMATS,
        localize=False,
        help_text=help_text,
    )


class RateRuleAdminForm(forms.ModelForm):
    """A rate rule with its times in the lot's own clock, and a window to preview
    the price of before saving (the "Preview price" button saves nothing)."""

    weekdays = forms.TypedMultipleChoiceField(
        choices=OpeningHours.Weekday.choices,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Weekly rules: the days it holds on.",
    )
    event_starts = _local_field("Event starts", "Event rules: local time at the lot.")
    event_ends = _local_field("Event ends", "Event rules: local time at the lot (excluded).")
    preview_vehicle_type = forms.ChoiceField(
        label="Vehicle type", choices=VehicleType.choices, initial=VehicleType.CAR, required=False
    )
    preview_start = _local_field("From", "Local time at the lot.")
    preview_end = _local_field("Until", "Local time at the lot.")

    class Meta:
        model = RateRule
        fields = (
            "lot",
            "name",
            "vehicle_type",
            "kind",
            "weekdays",
            "start_time",
            "end_time",
            "hourly_amount",
            "priority",
            "is_active",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rule = self.instance
        self.initial["weekdays"] = rule.weekday_list if rule.pk else [0, 1, 2, 3, 4]
        if rule.pk and rule.starts_at and rule.ends_at:
            tz = rule.lot.tz
            self.initial["event_starts"] = rule.starts_at.astimezone(tz).replace(tzinfo=None)
            self.initial["event_ends"] = rule.ends_at.astimezone(tz).replace(tzinfo=None)

    def clean_weekdays(self) -> int:
        return sum(1 << day for day in self.cleaned_data.get("weekdays") or ())

    def lot_tz(self) -> zoneinfo.ZoneInfo | None:
        lot = self.cleaned_data.get("lot") or (self.instance.lot if self.instance.lot_id else None)
        return lot.tz if lot is not None else None

    def clean(self):
        cleaned = super().clean()
        tz = self.lot_tz()
        if tz is not None:
            for field, attribute in (("event_starts", "starts_at"), ("event_ends", "ends_at")):
                local = cleaned.get(field)
                setattr(self.instance, attribute, local.replace(tzinfo=tz) if local else None)
        if cleaned.get("kind") == RateRule.Kind.EVENT:
            # An event's rule has no weekdays or times (the table insists).
            cleaned["weekdays"], cleaned["start_time"], cleaned["end_time"] = 0, None, None
            if not cleaned.get("event_starts"):
                self.add_error("event_starts", "An event needs a start.")
        else:
            self.instance.starts_at = self.instance.ends_at = None
        return cleaned

    def _post_clean(self) -> None:
        super()._post_clean()
        # The model names starts_at/ends_at; the form shows them as event_*.
        for model_field, form_field in (("starts_at", "event_starts"), ("ends_at", "event_ends")):
            errors = self._errors.pop(model_field, None) if self._errors else None
            if errors:
                self._errors.setdefault(form_field, self.error_class()).extend(errors)

    def preview_window(self) -> tuple[str, datetime, datetime] | None:
        """(vehicle type, start, end) in UTC of the preview, or None (errors added)."""
        data, tz = self.cleaned_data, self.lot_tz()
        start, end = data.get("preview_start"), data.get("preview_end")
        if not start:
            self.add_error("preview_start", "When does the window start?")
        if not end:
            self.add_error("preview_end", "When does it end?")
        if tz is None or not start or not end:
            return None
        start, end = start.replace(tzinfo=tz), end.replace(tzinfo=tz)
        if end <= start:
            self.add_error("preview_end", "The window must end after it starts.")
            return None
        if end - start > timedelta(days=31):
            self.add_error("preview_end", "Preview at most 31 days.")
            return None
        return data.get("preview_vehicle_type") or VehicleType.CAR, start, end


@admin.register(RateRule)
class RateRuleAdmin(AdminInputMixin, LotScopedAdminMixin, admin.ModelAdmin):
    """Flex rates: rules by weekday and time of day, and event rates. Saved and
    deleted through lots.services (which ends the lot's cached availability);
    bookings already made keep the rules they were made with."""

    form = RateRuleAdminForm
    list_display = ("name", "lot", "kind", "when", "applies_to", "hourly", "priority", "is_active")
    list_filter = ("kind", "is_active", ("lot", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "lot__name", "lot__slug")
    list_select_related = ("lot",)
    autocomplete_fields = ("lot",)
    fieldsets = [
        (
            None,
            {"fields": ("lot", "name", "vehicle_type", "hourly_amount", "priority", "is_active")},
        ),
        (
            "When (in the lot's local time)",
            {
                "fields": (
                    "kind",
                    "weekdays",
                    "start_time",
                    "end_time",
                    "event_starts",
                    "event_ends",
                ),
                "description": "Weekly: the weekdays and the local times (00:00 as the end is "
                "midnight; a rule through the night is two rules). Event: a date range. Each "
                "started hour is charged at the rule in force at its start: an event before a "
                "weekly rule, then the higher priority; every 24 hours stay capped at the daily "
                "maximum. Bookings already made keep the rules they were made with.",
            },
        ),
        (
            "Price preview (saves nothing)",
            {"fields": ("preview_vehicle_type", "preview_start", "preview_end")},
        ),
    ]

    @admin.display(description="When")
    def when(self, rule: RateRule) -> str:
        if rule.kind == RateRule.Kind.EVENT:
            tz = rule.lot.tz
            return (
                f"{rule.starts_at.astimezone(tz):%Y-%m-%d %H:%M} – "
                f"{rule.ends_at.astimezone(tz):%Y-%m-%d %H:%M}"
            )
        days = ", ".join(OpeningHours.Weekday(day).label[:3] for day in rule.weekday_list)
        return f"{days} {rule.start_time:%H:%M}–{rule.end_time:%H:%M}"

    @admin.display(description="Vehicles", ordering="vehicle_type")
    def applies_to(self, rule: RateRule) -> str:
        return rule.get_vehicle_type_display() if rule.vehicle_type else "All"

    @admin.display(description="Per hour", ordering="hourly_amount")
    def hourly(self, rule: RateRule) -> str:
        return admin_money(rule.hourly_amount, rule.lot.currency)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        initial = super().get_changeform_initial_data(request)
        lot_ids = staff_lot_ids(request)
        if "lot" not in initial and lot_ids is not None and len(lot_ids) == 1:
            initial["lot"] = next(iter(lot_ids))  # staff of one lot: that one
        return initial

    def get_readonly_fields(self, request: HttpRequest, obj: RateRule | None = None):
        fields = tuple(super().get_readonly_fields(request, obj))
        # A rule belongs to its lot: moving it would change two lots' prices at once.
        return (*fields, "lot") if obj is not None else fields

    def save_model(self, request, obj: RateRule, form, change) -> None:
        rate_rule_save(rule=obj)

    def delete_model(self, request, obj: RateRule) -> None:
        rate_rule_delete(rule=obj)

    def delete_queryset(self, request, queryset) -> None:
        for rule in queryset:
            rate_rule_delete(rule=rule)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST" and "_preview" in request.POST:
            return self._preview_view(request, object_id, form_url)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _preview_view(self, request, object_id, form_url) -> HttpResponse:
        """The form as entered, unsaved, with the window's price as the rules are
        saved and with this rule as edited."""
        if object_id is None:
            if not self.has_add_permission(request):
                raise PermissionDenied
            obj = None
        else:
            obj = scoped_object_or_404(self, request, object_id)
            if not self.has_change_permission(request, obj):
                raise PermissionDenied
        form = self.get_form(request, obj, change=obj is not None)(
            request.POST, instance=obj or RateRule()
        )
        preview = problem = None
        if form.is_valid():
            window = form.preview_window()
            if window is not None:
                vehicle_type, start, end = window
                try:
                    preview = rate_rule_preview(
                        lot=form.instance.lot,
                        vehicle_type=vehicle_type,
                        start=start,
                        end=end,
                        draft=form.instance,
                    )
                except ApplicationError as exc:
                    problem = exc.detail
        fieldsets = self.get_fieldsets(request, obj)
        admin_form = helpers.AdminForm(
            form,
            list(fieldsets),
            self.get_prepopulated_fields(request, obj),
            self.get_readonly_fields(request, obj),
            model_admin=self,
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"{'Change' if obj else 'Add'} rate rule",
            "subtitle": str(obj) if obj else None,
            "adminform": admin_form,
            "object_id": object_id,
            "original": obj,
            "is_popup": False,
            "to_field": None,
            "media": self.media + admin_form.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(form, []),
            "preserved_filters": self.get_preserved_filters(request),
            "preview": preview,
            "preview_problem": problem,
        }
        return self.render_change_form(
            request, context, add=obj is None, change=obj is not None, obj=obj, form_url=form_url
        )


# --- gates --------------------------------------------------------------------------------


class GateCreateForm(forms.Form):
    lot = forms.ModelChoiceField(queryset=Lot.objects.none())
    name = forms.CharField(max_length=80, help_text="e.g. North entrance.")

    def __init__(self, *args, lots: QuerySet[Lot], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lot"].queryset = lots
        if len(lots) == 1:
            self.fields["lot"].initial = lots[0].pk


@admin.register(GateDevice)
class GateDeviceAdmin(AdminInputMixin, LotScopedAdminMixin, admin.ModelAdmin):
    """A gate's key is made by gate_create and shown once, on the page that
    answers the add form; only its prefix is kept readable. Revoking stops it."""

    list_display = ("name", "lot", "key", "is_active", "created_at", "last_seen_at", "revoked_at")
    list_filter = ("is_active", ("lot", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "key_prefix")
    list_select_related = ("lot",)
    fields = ("lot", "name", "key", "is_active", "created_at", "last_seen_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke_gates"]

    @admin.display(description="Key", ordering="key_prefix")
    def key(self, gate: GateDevice) -> str:
        return f"{gate.key_prefix}…"

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # A revoked gate stays listed, with when it was revoked.
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return self.has_change_permission(request)

    def get_urls(self):
        own = [
            path(
                "<path:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name="lots_gatedevice_revoke",
            ),
        ]
        return own + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        gate = self.get_object(request, unquote(object_id))
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "can_revoke": gate is not None
            and gate.is_active
            and self.has_change_permission(request, gate),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @method_decorator(never_cache)
    def add_view(self, request: HttpRequest, form_url="", extra_context=None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        lots = self.formfield_for_foreignkey(GateDevice._meta.get_field("lot"), request).queryset
        form = GateCreateForm(request.POST or None, lots=lots)
        if request.method == "POST" and form.is_valid():
            try:
                gate, raw_key = gate_create(
                    lot=form.cleaned_data["lot"], name=form.cleaned_data["name"]
                )
            except ApplicationError as exc:
                form.add_error(
                    "name" if exc.code in ("gate_exists", "invalid_name") else None, exc.detail
                )
            else:
                self.log_addition(request, gate, "Created; its key was shown once.")
                context = {
                    **self.admin_site.each_context(request),
                    "title": f"Gate {gate.name} created",
                    "opts": self.model._meta,
                    "gate": gate,
                    "raw_key": raw_key,
                    "has_view_permission": True,
                }
                response = TemplateResponse(request, "admin/lots/gatedevice/key_once.html", context)
                return response
        context = {
            **self.admin_site.each_context(request),
            "title": "Add gate device",
            "opts": self.model._meta,
            "form": form,
            "has_view_permission": self.has_view_permission(request),
        }
        return TemplateResponse(request, "admin/lots/gatedevice/add.html", context)

    @admin.action(description="Revoke the keys of selected gates", permissions=["revoke"])
    def revoke_gates(self, request: HttpRequest, queryset: QuerySet[GateDevice]) -> None:
        revoked = []
        for gate in queryset.filter(is_active=True).order_by("pk"):
            gate_revoke(gate_id=gate.pk)
            self.log_change(request, gate, "Revoked its key.")
            revoked.append(gate.name)
        if revoked:
            self.message_user(
                request,
                f"Revoked: {', '.join(revoked)}. Their keys no longer work.",
                messages.SUCCESS,
            )
        else:
            self.message_user(request, "Those gates were revoked already.", messages.WARNING)

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        gate = scoped_object_or_404(self, request, object_id)
        if not self.has_change_permission(request, gate):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:lots_gatedevice_change", args=[gate.pk]))
        if gate.is_active:
            gate_revoke(gate_id=gate.pk)
            self.log_change(request, gate, "Revoked its key.")
            self.message_user(
                request, f"Gate {gate.name} revoked: its key no longer works.", messages.SUCCESS
            )
        else:
            self.message_user(request, f"Gate {gate.name} was revoked already.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:lots_gatedevice_change", args=[gate.pk]))


# Partner webhooks' admin (lots/webhooks/admin.py), registered with the rest of the lots app's.
from lots.webhooks import admin as _webhooks_admin  # noqa: E402, F401
