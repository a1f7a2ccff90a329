"""Staff admin for reservations, and what lots and payments need of them.

A reservation's status, money and times move only along the state machine in
reservations/services.py, so the admin shows them read-only and offers the
staff transitions as actions that call the services and say what happened:
cancel (the payment is settled by the cancellation policy), mark arrived, mark
left, refund part. Each leaves a reservation event naming the staff member and
an entry in Django's admin log.

It also adds to the lots and payments admins, through the hooks they offer
(lots and payments do not import reservations, and nothing is re-registered):
the occupancy view of a lot, taking a spot out of service, and payments scoped
to the lots a staff member runs.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.db.models import (
    CharField,
    Count,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, Concat
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from config.admin_input import AdminInputMixin, IndexedSearchMixin, users_by_email_start
from config.admin_paging import CappedCountMixin
from config.db_router import reading_replica
from config.errors import ApplicationError
from config.money import minor_unit_digits, to_minor_units
from config.plates import normalize_plate
from lots import admin as lots_admin
from lots.admin import (
    LotScopedAdminMixin,
    StaffLotFilter,
    admin_money,
    scoped_object_or_404,
    staff_lot_ids,
)
from lots.models import Lot, Spot
from payments import admin as payments_admin
from payments.models import Payment
from reservations import admin_reports, attention
from reservations.models import (
    BLOCKING_STATUSES,
    EXTENSION_REFERENCE_SEPARATOR,
    PAYMENT_REFERENCE_PREFIX,
    Actor,
    IdempotencyKey,
    Reservation,
    ReservationEvent,
    Settlement,
    Status,
    extension_payment_reference,
    normalize_code,
    payment_reference,
)
from reservations.occupancy import local_today, lot_occupancy, occupancy_svg
from reservations.services import (
    reservation_arrive,
    reservation_cancel,
    reservation_depart,
    reservation_refund,
    reservation_settlement_retry,
    spot_take_out_of_service,
)


class ReadOnlyAdminMixin:
    """Nothing is added, edited or deleted here: the rows are records."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def local_time(moment: datetime | None, lot: Lot, *, with_zone: bool = True) -> str:
    """A moment on the lot's wall clock: `2026-03-04 11:00 CET`."""
    if moment is None:
        return "—"
    local = moment.astimezone(lot.tz)
    return f"{local:%Y-%m-%d %H:%M} {local:%Z}" if with_zone else f"{local:%Y-%m-%d %H:%M}"


def booking_payments(reservation: Reservation) -> list[Payment]:
    """The reservation's payments: the booking's, its overstay's and its extensions'."""
    reference = payment_reference(reservation)
    extensions = Q(reference__startswith=reference + EXTENSION_REFERENCE_SEPARATOR)
    return list(Payment.objects.filter(Q(reference=reference) | extensions).order_by("pk"))


REFUNDABLE_KINDS = (Payment.Kind.BOOKING, Payment.Kind.EXTENSION)


def payment_summary(payments: list[Payment]) -> str:
    """`Booking: captured 5.00 EUR, refunded 1.00 EUR (captured)`."""
    if not payments:
        return "No payment was made."
    parts = []
    for p in payments:
        figures = [f"authorised {admin_money(p.amount_authorised, p.currency)}"]
        if p.amount_captured:
            figures.append(f"captured {admin_money(p.amount_captured, p.currency)}")
        if p.amount_refunded:
            figures.append(f"refunded {admin_money(p.amount_refunded, p.currency)}")
        pending = f"; {p.operation} under way" if p.operation else ""
        parts.append(
            f"{p.get_kind_display()}: {', '.join(figures)} "
            f"({p.get_status_display().lower()}{pending})"
        )
    return " · ".join(parts)


# --- reservations -------------------------------------------------------------------------


class ReservationEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ReservationEvent
    extra = 0
    fields = ("at_local", "from_status", "to_status", "actor", "who", "data")
    readonly_fields = fields
    ordering = ("at", "id")
    verbose_name = "event"
    verbose_name_plural = "Audit trail"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReservationEvent]:
        return super().get_queryset(request).select_related("actor_user", "reservation__lot")

    @admin.display(description="When (lot time)")
    def at_local(self, event: ReservationEvent) -> str:
        return local_time(event.at, event.reservation.lot)

    @admin.display(description="Who")
    def who(self, event: ReservationEvent) -> str:
        return event.actor_user.email if event.actor_user else "—"


class StartDayFilter(admin.SimpleListFilter):
    """Reservations starting on a day of each lot's own calendar."""

    title = "starting (lot time)"
    parameter_name = "starting"
    _OFFSETS = {"yesterday": (-1, 1), "today": (0, 1), "tomorrow": (1, 1), "next7": (0, 7)}

    def lookups(self, request, model_admin):
        return [
            ("yesterday", "Yesterday"),
            ("today", "Today"),
            ("tomorrow", "Tomorrow"),
            ("next7", "Next 7 days"),
        ]

    def queryset(self, request, queryset):
        if self.value() not in self._OFFSETS:
            return queryset
        first, days = self._OFFSETS[self.value()]
        lots = Lot.objects.all()
        lot_ids = staff_lot_ids(request)
        if lot_ids is not None:
            lots = lots.filter(pk__in=lot_ids)
        now = timezone.now()
        condition = Q(pk__in=[])
        for tz_name in lots.values_list("timezone", flat=True).distinct():
            tz = ZoneInfo(tz_name)
            today = now.astimezone(tz).date()
            start_day = today + timedelta(days=first)
            start = datetime.combine(start_day, datetime.min.time(), tzinfo=tz)
            end = datetime.combine(start_day + timedelta(days=days), datetime.min.time(), tzinfo=tz)
            condition |= Q(lot__timezone=tz_name, start__gte=start, start__lt=end)
        return queryset.filter(condition)


class AttentionFilter(admin.SimpleListFilter):
    """What staff must follow up: money Stripe would not settle, cars still in
    after their end (the gate may have missed the exit), bookings we had to
    cancel because an overstaying car held their spot or a closure closed it,
    and cars parked in a closed spot."""

    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [
            ("any", "Anything"),
            ("settlement", "Payment not settled"),
            ("parked", "Still parked after its end"),
            ("displaced", "Cancelled: spot held by an overstaying car, or closed"),
            ("closed", "Parked in a closed spot"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        reasons = {
            "settlement": Q(settlement=Settlement.ATTENTION),
            "parked": Q(status=Status.PARKED, end__lte=now),
            # As the lot's "needs attention" page says (reservations/attention.py).
            "displaced": attention.displaced_q(now),
            "closed": attention.closed_parked_q(now),
        }
        if self.value() == "any":
            return queryset.filter(
                reasons["settlement"] | reasons["parked"] | reasons["displaced"] | reasons["closed"]
            )
        if self.value() in reasons:
            return queryset.filter(reasons[self.value()])
        return queryset


class RefundForm(forms.Form):
    amount = forms.DecimalField(min_value=Decimal(0), help_text="In the lot's currency.")
    reason = forms.CharField(
        max_length=200, required=False, help_text="For the audit trail (optional)."
    )

    def __init__(self, *args, currency: str, refundable: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.places = minor_unit_digits(currency)
        self.refundable = refundable
        self.fields["amount"].decimal_places = self.places
        self.fields["amount"].widget.attrs["step"] = str(Decimal(1).scaleb(-self.places))
        self.fields[
            "amount"
        ].help_text = f"In {currency.upper()}; at most {admin_money(refundable, currency)}."

    def clean_amount(self) -> int:
        try:
            minor = to_minor_units(self.cleaned_data["amount"], self.currency)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if minor <= 0:
            raise forms.ValidationError("Refund more than nothing.")
        if minor > self.refundable:
            raise forms.ValidationError(
                f"At most {admin_money(self.refundable, self.currency)} can be refunded."
            )
        return minor


@admin.register(Reservation)
class ReservationAdmin(
    CappedCountMixin, IndexedSearchMixin, AdminInputMixin, LotScopedAdminMixin, admin.ModelAdmin
):
    list_display = (
        "code",
        "lot",
        "spot_label",
        "vehicle_type",
        "vehicle_plate",
        "status",
        "start_local",
        "end_local",
        "price",
        "driver",
    )
    list_filter = (
        AttentionFilter,
        "status",
        StartDayFilter,
        ("lot", StaffLotFilter),
        "vehicle_type",
    )
    # No date drill-down (date_hierarchy): its first level lists the years of
    # every row, a scan of the whole history on every page. StartDayFilter
    # answers the days staff ask about.
    search_fields = ("code", "vehicle_plate", "user__email")
    search_help_text = "Code, start of the number plate or of the driver's e-mail."
    list_select_related = ("lot", "spot", "user")
    ordering = ("-start",)
    inlines = [ReservationEventInline]
    actions = [
        "cancel_reservations",
        "mark_arrived",
        "mark_left",
        "refund_part",
        "retry_settlement",
    ]
    fieldsets = [
        (None, {"fields": ("code", "status", "driver", "vehicle_type", "vehicle_plate")}),
        ("Where", {"fields": ("lot", "spot", "asked_of_the_spot")}),
        (
            "When (in the lot's time zone)",
            {
                "fields": (
                    "local_window",
                    "start_local",
                    "end_local",
                    "occupied_until_local",
                    "hold_expires_local",
                    "arrived_local",
                    "departed_local",
                )
            },
        ),
        (
            "Money",
            {
                "fields": (
                    "price",
                    "rates_as_booked",
                    "no_show_charge",
                    "owed",
                    "overstay",
                    "settlement_state",
                    "payments",
                )
            },
        ),
        ("Record", {"fields": ("created_local", "updated_local")}),
    ]
    readonly_fields = (
        "code",
        "status",
        "driver",
        "vehicle_type",
        "vehicle_plate",
        "lot",
        "spot",
        "asked_of_the_spot",
        "local_window",
        "start_local",
        "end_local",
        "occupied_until_local",
        "hold_expires_local",
        "arrived_local",
        "departed_local",
        "price",
        "rates_as_booked",
        "no_show_charge",
        "owed",
        "overstay",
        "settlement_state",
        "payments",
        "created_local",
        "updated_local",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Reservations are made through the booking service (allocation, holds).
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Deleting would erase the audit trail; cancel instead.
        return False

    def search_found(self, term: str) -> Q:
        # The code however it is typed ("r7k29qxm"), the start of the number
        # plate ("AB-123"), the start of the driver's e-mail: each an index
        # range ("contains" read every row: 6 s a page on a year of history).
        found = Q(code=normalize_code(term)) | Q(user_id__in=users_by_email_start(term))
        plate = normalize_plate(term)
        if plate:
            # "<> ''" as the index has it: PostgreSQL cannot tell LIKE implies it.
            found |= Q(vehicle_plate__startswith=plate) & ~Q(vehicle_plate="")
        return found

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Every field is read-only: no save buttons that would do nothing. The
        # staff transitions are buttons that run the actions on this one row.
        reservation = self.get_object(request, unquote(object_id))
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "reservation_actions": self._actions_for(request, reservation),
            "changelist_url": reverse("admin:reservations_reservation_changelist"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _actions_for(self, request: HttpRequest, reservation: Reservation | None) -> list:
        if reservation is None or not self.has_change_permission(request, reservation):
            return []
        offered = []
        if reservation.status in (Status.PENDING_PAYMENT, Status.CONFIRMED):
            offered.append(("cancel_reservations", "Cancel"))
        if reservation.status == Status.CONFIRMED:
            offered.append(("mark_arrived", "Mark arrived now"))
        if reservation.status == Status.PARKED:
            offered.append(("mark_left", "Mark left now"))
        if any(
            p.kind in REFUNDABLE_KINDS and p.amount_net > 0 for p in booking_payments(reservation)
        ):
            offered.append(("refund_part", "Refund…"))
        if reservation.settlement == Settlement.ATTENTION:
            offered.append(("retry_settlement", "Retry settlement"))
        return offered

    # --- columns and fields ---

    @admin.display(description="Spot", ordering="spot__label")
    def spot_label(self, reservation: Reservation) -> str:
        return reservation.spot.label

    @admin.display(description="Asked of the spot")
    def asked_of_the_spot(self, reservation: Reservation) -> str:
        """What the driver asked for (a move keeps to it): "Nothing" if nothing."""
        text = reservation.needs.describe()
        return text[:1].upper() + text[1:] if text else "Nothing"

    @admin.display(description="Driver", ordering="user__email")
    def driver(self, reservation: Reservation) -> str:
        return reservation.user.email

    @admin.display(description="Price", ordering="price_amount")
    def price(self, reservation: Reservation) -> str:
        return admin_money(reservation.price_amount, reservation.currency)

    @admin.display(description="Rates as booked")
    def rates_as_booked(self, reservation: Reservation) -> str:
        """The rate and flex rules every charge of this booking is priced at
        (whatever the lot's rules say now)."""
        currency = reservation.currency
        parts = [
            f"{admin_money(reservation.hourly_amount, currency)} an hour, at most "
            f"{admin_money(reservation.daily_max_amount, currency)} a day"
        ]
        for rule in (reservation.tariff_rules or {}).get("rules", ()):
            parts.append(f"{rule[1]}: {admin_money(rule[2], currency)} an hour")
        return "; ".join(parts)

    @admin.display(description="No-show charge")
    def no_show_charge(self, reservation: Reservation) -> str:
        return admin_money(reservation.no_show_amount, reservation.currency)

    @admin.display(description="Owed in the end")
    def owed(self, reservation: Reservation) -> str:
        if reservation.amount_due is None:
            return "Not known until it ends"
        return admin_money(reservation.amount_due, reservation.currency)

    @admin.display(description="Settlement")
    def settlement_state(self, reservation: Reservation) -> str:
        if reservation.settlement == Settlement.NONE:
            return "Not due yet"
        state = reservation.get_settlement_display()
        if reservation.settlement == Settlement.SETTLED:
            return f"{state} ({local_time(reservation.settled_at, reservation.lot)})"
        tries = f"{reservation.settlement_attempts} attempt(s)"
        error = f": {reservation.settlement_error}" if reservation.settlement_error else ""
        return f"{state} after {tries}{error}"

    @admin.display(description="Overstay")
    def overstay(self, reservation: Reservation) -> str:
        return admin_money(getattr(reservation, "overstay_amount", 0), reservation.currency)

    @admin.display(description="Payments")
    def payments(self, reservation: Reservation) -> str:
        found = booking_payments(reservation)
        url = reverse("admin:payments_payment_changelist")
        return format_html(
            '{} <a href="{}?q={}">Open</a>',
            payment_summary(found),
            url,
            payment_reference(reservation),
        )

    @admin.display(description="Start", ordering="start")
    def start_local(self, reservation: Reservation) -> str:
        return local_time(reservation.start, reservation.lot)

    @admin.display(description="End", ordering="end")
    def end_local(self, reservation: Reservation) -> str:
        return local_time(reservation.end, reservation.lot)

    @admin.display(description="Spot held until")
    def occupied_until_local(self, reservation: Reservation) -> str:
        return local_time(reservation.occupied_until, reservation.lot)

    @admin.display(description="Unpaid hold expires")
    def hold_expires_local(self, reservation: Reservation) -> str:
        return local_time(reservation.hold_expires_at, reservation.lot)

    @admin.display(description="Arrived")
    def arrived_local(self, reservation: Reservation) -> str:
        return local_time(reservation.arrived_at, reservation.lot)

    @admin.display(description="Left")
    def departed_local(self, reservation: Reservation) -> str:
        return local_time(reservation.departed_at, reservation.lot)

    @admin.display(description="Booked")
    def created_local(self, reservation: Reservation) -> str:
        return local_time(reservation.created_at, reservation.lot)

    @admin.display(description="Last changed")
    def updated_local(self, reservation: Reservation) -> str:
        return local_time(reservation.updated_at, reservation.lot)

    @admin.display(description="Window in the lot's time zone")
    def local_window(self, reservation: Reservation) -> str:
        lot = reservation.lot
        start = local_time(reservation.start, lot, with_zone=False)
        end = local_time(reservation.end, lot, with_zone=False)
        return f"{start} to {end} ({lot.timezone})"

    # --- actions: each calls a service per reservation and reports on each ---

    def _back(self, request: HttpRequest, queryset: QuerySet[Reservation]) -> HttpResponse | None:
        """Back to the reservation's page when the action was run from it."""
        if request.POST.get("_back") == "change":
            selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
            if len(selected) == 1:
                return HttpResponseRedirect(
                    reverse("admin:reservations_reservation_change", args=[selected[0]])
                )
        return None

    def _run(self, request, queryset, *, verb: str, call, done, already: str):
        for reservation in queryset.select_related("lot").order_by("pk"):
            try:
                result = call(reservation)
            except ApplicationError as exc:
                self.message_user(
                    request, f"{reservation.code}: not {verb}. {exc.detail}", messages.ERROR
                )
                continue
            if result.changed:
                message = done(result.reservation)
                self.log_change(request, reservation, message)
                self.message_user(request, f"{reservation.code}: {message}", messages.SUCCESS)
            else:
                self.message_user(request, f"{reservation.code}: {already}", messages.WARNING)
        return self._back(request, queryset)

    @admin.action(description="Cancel selected reservations", permissions=["change"])
    def cancel_reservations(self, request: HttpRequest, queryset: QuerySet[Reservation]):
        def done(reservation: Reservation) -> str:
            due = reservation.amount_due or 0
            money = (
                f"charged {admin_money(due, reservation.currency)} (cancelled after its start)"
                if due
                else "nothing charged"
            )
            return f"cancelled; {money}. {payment_summary(booking_payments(reservation))}"

        return self._run(
            request,
            queryset,
            verb="cancelled",
            call=lambda r: reservation_cancel(
                reservation_id=r.pk, actor=Actor.STAFF, actor_user=request.user
            ),
            done=done,
            already="was already cancelled.",
        )

    @admin.action(description="Mark arrived now", permissions=["change"])
    def mark_arrived(self, request: HttpRequest, queryset: QuerySet[Reservation]):
        now = timezone.now()
        return self._run(
            request,
            queryset,
            verb="marked arrived",
            call=lambda r: reservation_arrive(
                reservation_id=r.pk, at=now, actor=Actor.STAFF, actor_user=request.user
            ),
            done=lambda r: f"marked arrived at {local_time(now, r.lot)}.",
            already="had arrived already.",
        )

    @admin.action(description="Mark left now", permissions=["change"])
    def mark_left(self, request: HttpRequest, queryset: QuerySet[Reservation]):
        now = timezone.now()

        def done(reservation: Reservation) -> str:
            charged = admin_money(reservation.amount_due or 0, reservation.currency)
            overstay = getattr(reservation, "overstay_amount", 0)
            extra = (
                f" plus {admin_money(overstay, reservation.currency)} overstay" if overstay else ""
            )
            return f"marked left at {local_time(now, reservation.lot)}; charged {charged}{extra}."

        return self._run(
            request,
            queryset,
            verb="marked left",
            call=lambda r: reservation_depart(
                reservation_id=r.pk, at=now, actor=Actor.STAFF, actor_user=request.user
            ),
            done=done,
            already="had left already.",
        )

    @admin.action(description="Refund part of the payment…", permissions=["change"])
    def refund_part(self, request: HttpRequest, queryset: QuerySet[Reservation]):
        chosen = list(queryset.select_related("lot")[:2])
        if len(chosen) != 1:
            self.message_user(request, "Refund one reservation at a time.", messages.WARNING)
            return self._back(request, queryset)
        reservation = chosen[0]
        paid = [p for p in booking_payments(reservation) if p.kind in REFUNDABLE_KINDS]
        refundable = sum(p.amount_net for p in paid)
        if refundable <= 0:
            self.message_user(
                request,
                f"{reservation.code}: nothing to refund; only money taken from the card can be "
                f"refunded. {payment_summary(paid)}",
                messages.ERROR,
            )
            return self._back(request, queryset)
        form = RefundForm(
            request.POST if "apply" in request.POST else None,
            currency=reservation.currency,
            refundable=refundable,
        )
        if "apply" in request.POST and form.is_valid():
            amount = form.cleaned_data["amount"]
            try:
                reservation_refund(
                    reservation_id=reservation.pk,
                    amount=amount,
                    actor_user=request.user,
                    reason=form.cleaned_data["reason"],
                )
            except ApplicationError as exc:
                self.message_user(
                    request, f"{reservation.code}: not refunded. {exc.detail}", messages.ERROR
                )
            else:
                message = f"refunded {admin_money(amount, reservation.currency)}."
                self.log_change(request, reservation, message)
                summary = payment_summary(booking_payments(reservation))
                self.message_user(
                    request, f"{reservation.code}: {message} {summary}", messages.SUCCESS
                )
            return self._back(request, queryset)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Refund part of {reservation.code}",
            "opts": self.model._meta,
            "reservation": reservation,
            "payments": paid,
            "refundable": admin_money(refundable, reservation.currency),
            "form": form,
            "action": "refund_part",
            "back": request.POST.get("_back", ""),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/reservations/reservation/refund.html", context)

    @admin.action(description="Retry settling the payments", permissions=["change"])
    def retry_settlement(self, request: HttpRequest, queryset: QuerySet[Reservation]):
        for reservation in queryset.order_by("pk"):
            if reservation.settlement != Settlement.ATTENTION:
                self.message_user(
                    request, f"{reservation.code}: its settlement needs no retry.", messages.WARNING
                )
                continue
            state = reservation_settlement_retry(reservation_id=reservation.pk)
            self.log_change(request, reservation, f"Settlement retried: {state}.")
            level = messages.SUCCESS if state == Settlement.SETTLED else messages.ERROR
            label = Settlement(state).label.lower()
            self.message_user(request, f"{reservation.code}: settlement {label}.", level)
        return self._back(request, queryset)


class ReservationRecordsAdmin(
    CappedCountMixin,
    IndexedSearchMixin,
    AdminInputMixin,
    LotScopedAdminMixin,
    ReadOnlyAdminMixin,
    admin.ModelAdmin,
):
    """What is recorded about reservations, a row or more a booking: read-only,
    scoped by the reservation's lot, searched on indexes, counted up to a cap."""

    lot_lookup = "reservation__lot_id"
    user_field: str  # whom a row names: the e-mail search looks there

    def search_found(self, term: str) -> Q:
        # The reservation by its code, however typed; who by the start of
        # their e-mail (`user_field`).
        named = Reservation.objects.filter(code=normalize_code(term)).values_list("pk", flat=True)
        by_user = {f"{self.user_field}_id__in": users_by_email_start(term)}
        return Q(reservation_id__in=list(named)) | Q(**by_user)


@admin.register(ReservationEvent)
class ReservationEventAdmin(ReservationRecordsAdmin):
    user_field = "actor_user"
    list_display = ("reservation", "from_status", "to_status", "actor", "actor_user", "at")
    # A period by its bounds, not date_hierarchy's list of the years of every
    # row (several events per booking: the largest table there is).
    list_filter = ("actor", "to_status", ("at", admin.DateFieldListFilter))
    search_fields = ("reservation__code", "actor_user__email")
    search_help_text = "Reservation code, or the start of the e-mail of who did it."
    list_select_related = ("reservation", "actor_user")
    # Latest first, by the primary key (in the order events happen): the
    # model's order, by time, would sort the whole table for every page.
    ordering = ("-id",)
    fields = ("reservation", "at", "from_status", "to_status", "actor", "actor_user", "data")
    readonly_fields = fields


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReservationRecordsAdmin):
    # Keys are the clients' own and indexed per client only (a lone key would
    # need an index written on every booking): found by their reservation or client.
    user_field = "user"
    list_display = ("key", "user", "reservation", "created_at")
    search_fields = ("user__email", "reservation__code")
    search_help_text = (
        "The reservation's code, or the start of the client's e-mail (their keys are listed)."
    )
    list_select_related = ("user", "reservation")
    fields = ("key", "user", "reservation", "fingerprint", "created_at")
    readonly_fields = fields


# --- what reservations add to the lots and payments admins (through their hooks) -----------


def occupancy_view(lot_admin, request: HttpRequest, object_id: str) -> HttpResponse:
    """A lot's day: a timeline of its spots, hour by hour, with arrivals and departures."""
    lot = scoped_object_or_404(lot_admin, request, object_id)
    today = local_today(lot)
    asked = request.GET.get("day")
    day = _parse_day(asked)
    if day is None:
        if asked:
            lot_admin.message_user(request, "That is not a date; showing today.", messages.WARNING)
        day = today
    occupancy = lot_occupancy(lot=lot, day=day)
    context = {
        **lot_admin.admin_site.each_context(request),
        "title": f"Occupancy of {lot.name}",
        "subtitle": f"{day:%A %d %B %Y}",
        "opts": lot_admin.model._meta,
        "original": lot,
        "lot": lot,
        "occupancy": occupancy,
        "chart": occupancy_svg(occupancy),
        "day": day,
        "today": today,
        "previous_day": day - timedelta(days=1),
        "next_day": day + timedelta(days=1),
        "utilisation_percent": round(occupancy.utilisation * 100),
        "has_view_permission": True,
    }
    return TemplateResponse(request, "admin/lots/lot/occupancy.html", context)


def _parse_day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if 2000 <= day.year <= 2200 else None


def lot_links(lot: Lot) -> list[tuple[str, str]]:
    return [
        (reverse("admin:lots_lot_occupancy", args=[lot.pk]), "Occupancy"),
        (
            reverse("admin:reservations_reservation_changelist") + f"?lot__id__exact={lot.pk}",
            "Reservations",
        ),
        (
            reverse("admin:reservations_reservation_changelist")
            + f"?lot__id__exact={lot.pk}&attention=any",
            "Reservations needing attention",
        ),
    ]


def _annotate_to_come(spots: QuerySet[Spot]) -> QuerySet[Spot]:
    # A subquery per row shown (on the partial index of blocking rows), not a
    # join of every reservation the spots ever had.
    to_come = (
        Reservation.objects.filter(
            spot=OuterRef("pk"),
            status__in=BLOCKING_STATUSES,
            occupied_until__gt=timezone.now(),
        )
        .order_by()
        .values("spot")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return spots.annotate(to_come=Coalesce(Subquery(to_come, output_field=IntegerField()), 0))


@admin.display(description="Reservations to come", ordering="to_come")
def reservations_to_come(spot: Spot) -> int:
    return getattr(spot, "to_come", 0)


def _take_out(spot_admin, request: HttpRequest, queryset: QuerySet[Spot], *, move: bool) -> None:
    for spot in queryset.order_by("lot", "label"):
        try:
            result = spot_take_out_of_service(
                spot_id=spot.pk, actor_user=request.user, move_reservations=move
            )
        except ApplicationError as exc:
            spot_admin.message_user(
                request, f"{spot.label}: left in service. {exc.detail}", messages.ERROR
            )
            continue
        if not result.changed:
            spot_admin.message_user(
                request, f"{spot.label}: was out of service already.", messages.WARNING
            )
            continue
        moves = ", ".join(f"{m.code} to {m.moved_to}" for m in result.moved)
        message = "Taken out of service." + (
            f" Moved {moves}." if moves else " It had no reservations to come."
        )
        spot_admin.log_change(request, spot, message)
        moved = Reservation.objects.filter(code__in=[m.code for m in result.moved])
        for reservation in moved:
            spot_admin.log_change(
                request,
                reservation,
                f"Moved from spot {spot.label} to {reservation.spot.label}: "
                f"{spot.label} was taken out of service.",
            )
        spot_admin.message_user(request, f"{spot.label}: {message}", messages.SUCCESS)


@admin.action(
    description="Take out of service, moving their reservations to free spots",
    permissions=["change"],
)
def take_out_moving(spot_admin, request: HttpRequest, queryset: QuerySet[Spot]) -> None:
    _take_out(spot_admin, request, queryset, move=True)


@admin.action(
    description="Take out of service only if they have no reservations to come",
    permissions=["change"],
)
def take_out_if_free(spot_admin, request: HttpRequest, queryset: QuerySet[Spot]) -> None:
    _take_out(spot_admin, request, queryset, move=False)


def staff_payments(request: HttpRequest, queryset: QuerySet[Payment]) -> QuerySet[Payment]:
    """Payments know reservations only by reference ("reservation:<code>"): a
    staff member sees those of the reservations of their lots."""
    lot_ids = staff_lot_ids(request)
    if lot_ids is None:
        return queryset
    references = (
        Reservation.objects.filter(lot_id__in=lot_ids)
        .annotate(
            reference=Concat(Value(PAYMENT_REFERENCE_PREFIX), "code", output_field=CharField())
        )
        .values("reference")
    )
    return queryset.filter(reference__in=Subquery(references))


def _occupancy_report(lot_admin, request: HttpRequest, object_id: str) -> HttpResponse:
    # A report: from a replica in a cluster, unless this staff member just wrote
    # (config/db_router.py).
    with reading_replica():
        return occupancy_view(lot_admin, request, object_id)


lots_admin.LotAdmin.view_hooks.append(("occupancy", _occupancy_report, "lots_lot_occupancy"))
lots_admin.LotAdmin.link_hooks.append(lot_links)
# Reports and what needs attention (reservations/admin_reports.py).
lots_admin.LotAdmin.view_hooks.extend(
    [
        ("report", admin_reports.report_view, "lots_lot_report"),
        ("attention", admin_reports.attention_view, "lots_lot_attention"),
    ]
)
lots_admin.LotAdmin.list_view_hooks.append(
    ("reports", admin_reports.reports_all_view, "lots_lot_reports")
)
lots_admin.LotAdmin.link_hooks.append(admin_reports.lot_links)
lots_admin.LotAdmin.page_link_hooks.append(admin_reports.page_links)
lots_admin.SpotAdmin.action_hooks.extend([take_out_moving, take_out_if_free])
lots_admin.SpotAdmin.column_hooks.append((reservations_to_come, _annotate_to_come))
payments_admin.PaymentAdmin.scope_hook = staff_payments


def payment_references(term: str) -> list[str]:
    """The payment references of the reservation a search term names by its
    code, however typed: its booking's and its extensions'."""
    reservation = Reservation.objects.filter(code=normalize_code(term)).first()
    if reservation is None:
        return []
    extensions = reservation.extensions.values_list("number", flat=True)
    return [
        payment_reference(reservation),
        *(extension_payment_reference(reservation, number) for number in extensions),
    ]


payments_admin.PaymentAdmin.reference_hook = payment_references
payments_admin.PaymentAdmin.currencies_hook = lambda: sorted(
    set(Lot.objects.values_list("currency", flat=True))
)


def closure_links(lot: Lot) -> list[tuple[str, str]]:
    return [
        (reverse("admin:reservations_closure_changelist") + f"?lot__id__exact={lot.pk}", "Closures")
    ]


lots_admin.LotAdmin.link_hooks.append(closure_links)
# Closures: their admin lives next to the service it runs.
from reservations import admin_closures  # noqa: E402, F401
