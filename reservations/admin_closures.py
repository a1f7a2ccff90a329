"""Closures in the admin: lot staff close their lot, or some of its spots, for
a while, and see what that did to the bookings already there.

Adding one runs closure_create (reservations/services/closures.py) and shows
its outcome: bookings moved to other spots, cancelled and refunded, cars
parked in a closed spot. A closure is lifted (an action), never deleted, so
that what it did stays explained. Staff see and add closures of their lots only.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.cache import never_cache

from config.admin_input import AdminInputMixin
from config.errors import ApplicationError
from lots.admin import LotScopedAdminMixin
from lots.models import Lot, Spot
from reservations.admin import local_time
from reservations.models import Closure, ClosureImpact
from reservations.services.closures import ClosureResult, closure_create, closure_lift

_LOCAL_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class ClosureForm(forms.Form):
    lot = forms.ModelChoiceField(queryset=Lot.objects.none())
    spots = forms.ModelMultipleChoiceField(
        queryset=Spot.objects.none(),
        required=False,
        help_text="Leave empty to close the whole lot.",
        widget=forms.SelectMultiple(attrs={"size": 8}),
    )
    starts_at = forms.DateTimeField(
        label="Closed from", widget=_LOCAL_INPUT, help_text="Local time at the lot."
    )
    ends_at = forms.DateTimeField(
        label="Until", widget=_LOCAL_INPUT, help_text="Local time at the lot (open again then)."
    )
    reason = forms.CharField(max_length=200, help_text="Shown to drivers, e.g. maintenance.")

    def __init__(self, *args, lots: QuerySet[Lot], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lot"].queryset = lots
        self.fields["spots"].queryset = Spot.objects.filter(lot__in=lots).select_related("lot")
        self.fields["spots"].label_from_instance = lambda spot: f"{spot.lot.name}: {spot}"
        if len(lots) == 1:
            self.fields["lot"].initial = lots[0].pk

    def clean(self) -> dict:
        data = super().clean()
        lot = data.get("lot")
        if lot is None:
            return data
        if any(spot.lot_id != lot.pk for spot in data.get("spots", ())):
            self.add_error("spots", f"Choose spots of {lot.name} only.")
        # Typed as the lot's wall clock: read them in its time zone.
        for name in ("starts_at", "ends_at"):
            if data.get(name) is not None:
                data[name] = _at_lot(data[name], lot)
        return data


def _at_lot(moment: datetime, lot: Lot) -> datetime:
    wall_clock = timezone.make_naive(moment)  # as typed (the form read it in UTC)
    return wall_clock.replace(tzinfo=zoneinfo.ZoneInfo(lot.timezone))


def outcome_summary(impacts) -> str:
    counts = {outcome: 0 for outcome in ClosureImpact.Outcome.values}
    for impact in impacts:
        counts[impact.outcome] += 1
    parts = [
        f"moved {counts['moved']}",
        f"cancelled {counts['cancelled']}",
        f"parked {counts['parked']}",
    ]
    if counts["expired"]:
        parts.append(f"lapsed holds expired {counts['expired']}")
    return ", ".join(parts)


@admin.register(Closure)
class ClosureAdmin(AdminInputMixin, LotScopedAdminMixin, admin.ModelAdmin):
    list_display = ("lot", "closed_from", "until", "what", "reason", "state", "outcome")
    list_filter = (("lot", admin.RelatedOnlyFieldListFilter),)
    list_select_related = ("lot",)
    search_fields = ("reason",)
    ordering = ("-starts_at",)
    fields = (
        "lot",
        "what",
        "closed_from",
        "until",
        "reason",
        "state",
        "created_by",
        "created_at",
        "lifted_by",
        "lifted_at",
        "impact_table",
    )
    readonly_fields = fields
    actions = ["lift_closures"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Closure]:
        return super().get_queryset(request).prefetch_related("impacts", "spots")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # lifted, not deleted: what it did stays explained

    @admin.display(description="Closed from", ordering="starts_at")
    def closed_from(self, closure: Closure) -> str:
        return local_time(closure.starts_at, closure.lot)

    @admin.display(description="Until", ordering="ends_at")
    def until(self, closure: Closure) -> str:
        return local_time(closure.ends_at, closure.lot)

    @admin.display(description="Closes")
    def what(self, closure: Closure) -> str:
        if closure.whole_lot:
            return "The whole lot"
        return ", ".join(sorted(spot.label for spot in closure.spots.all()))

    @admin.display(description="State")
    def state(self, closure: Closure) -> str:
        return "In force" if closure.lifted_at is None else "Lifted"

    @admin.display(description="What it did")
    def outcome(self, closure: Closure) -> str:
        return outcome_summary(closure.impacts.all())

    @admin.display(description="Bookings it met")
    def impact_table(self, closure: Closure) -> str:
        impacts = (
            closure.impacts.select_related("reservation", "from_spot", "to_spot")
            .order_by("pk")
            .all()
        )
        if not impacts:
            return "None: no booking was in its way."
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:reservations_reservation_change", args=[i.reservation_id]),
                    i.reservation.code,
                    i.get_outcome_display(),
                    i.from_spot.label,
                    i.to_spot.label if i.to_spot else "—",
                )
                for i in impacts
            ),
        )
        return format_html(
            '<table id="closure-impacts"><thead><tr><th>Reservation</th><th>Outcome</th>'
            "<th>From spot</th><th>To spot</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @method_decorator(never_cache)
    def add_view(self, request: HttpRequest, form_url="", extra_context=None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        lots = self.formfield_for_foreignkey(Closure._meta.get_field("lot"), request).queryset
        form = ClosureForm(request.POST or None, lots=lots)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                result = closure_create(
                    lot_id=data["lot"].pk,
                    starts_at=data["starts_at"],
                    ends_at=data["ends_at"],
                    reason=data["reason"],
                    spot_ids=[spot.pk for spot in data["spots"]],
                    actor_user=request.user,
                )
            except ApplicationError as exc:
                field = exc.field if exc.field in form.fields else None
                form.add_error(field, exc.detail)
            else:
                return self._created(request, result)
        context = {
            **self.admin_site.each_context(request),
            "title": "Close a lot or some of its spots",
            "opts": self.model._meta,
            "form": form,
            "has_view_permission": self.has_view_permission(request),
        }
        return TemplateResponse(request, "admin/reservations/closure/add.html", context)

    def _created(self, request: HttpRequest, result: ClosureResult) -> HttpResponse:
        closure = result.closure
        self.log_addition(request, closure, f"Closed; {outcome_summary(result.impacts)}.")
        level = (
            messages.WARNING if result.of("cancelled") or result.of("parked") else messages.SUCCESS
        )
        self.message_user(
            request,
            f"{closure.lot.name} closed from {local_time(closure.starts_at, closure.lot)} until "
            f"{local_time(closure.ends_at, closure.lot)}. Bookings in its way: "
            f"{outcome_summary(result.impacts)}.",
            level,
        )
        return HttpResponseRedirect(reverse("admin:reservations_closure_change", args=[closure.pk]))

    @admin.action(description="Lift the selected closures", permissions=["change"])
    def lift_closures(self, request: HttpRequest, queryset: QuerySet[Closure]) -> None:
        lifted = 0
        for closure in queryset.order_by("pk"):
            if closure_lift(closure_id=closure.pk, actor_user=request.user):
                self.log_change(request, closure, "Lifted.")
                lifted += 1
        if lifted:
            self.message_user(
                request, f"Lifted {lifted}: those spots can be booked again.", messages.SUCCESS
            )
        else:
            self.message_user(request, "Those closures were lifted already.", messages.WARNING)
