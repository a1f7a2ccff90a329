"""Admin pages for a lot's operator: the reports of their business (per lot and
across their lots, with a CSV export) and what needs attention (per lot, with
the actions that resolve it). Thin: the numbers come from reservations/reports.py
and reservations/attention.py, every change from a service.

Added to the lots admin through its hooks (lots does not import reservations).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from config.errors import ApplicationError
from lots.admin import admin_money, scoped_object_or_404, staff_lot_ids
from lots.features import SpotFeature
from lots.models import Lot
from reservations.attention import lot_attention, lots_attention_counts
from reservations.models import Actor, Reservation, Settlement, Status, normalize_code
from reservations.occupancy import local_today
from reservations.reports import (
    PRESETS,
    REVENUE_KINDS,
    REVENUE_LABELS,
    WEEKDAYS,
    BadPeriod,
    LotReport,
    Period,
    lots_report,
    occupancy_heatmap_svg,
    period_parse,
    period_preset,
    report_csv,
    revenue_bars_svg,
)
from reservations.services import reservation_depart, reservation_settlement_retry


def _period(lot_admin, request: HttpRequest, lot: Lot | None) -> Period:
    today = local_today(lot) if lot else timezone.now().date()
    try:
        return period_parse(request.GET, today)
    except BadPeriod as exc:
        lot_admin.message_user(request, f"{exc} Showing the last 7 days.", messages.WARNING)
        return period_preset("last7", today)


def _figures(report: LotReport) -> dict:
    """What the template shows of one lot's (or the totals') report."""
    money = report.currency
    return {
        "report": report,
        "revenue": [
            (
                REVENUE_LABELS[kind],
                admin_money(report.revenue[kind].captured, money),
                admin_money(report.revenue[kind].refunded, money),
                admin_money(report.revenue[kind].net, money),
            )
            for kind in REVENUE_KINDS
        ],
        "revenue_net": admin_money(report.revenue_net, money),
        "no_show_rate": _percent(report.no_show_rate),
        "overstay_rate": _percent(report.overstay_rate),
        "occupancy": _percent(report.occupancy_overall),
        "average_stay": _duration(report.average_stay),
        "lead_time": _duration(report.lead_time),
        "heatmap": occupancy_heatmap_svg(
            report,
            title=f"Occupancy by weekday and hour: {report.lot.name if report.lot else 'all lots'}",
        ),
        "revenue_chart": revenue_bars_svg(report, money=admin_money),
        "features": [
            (
                SpotFeature(name).label,
                figures,
                admin_money(figures.revenue_net, money),
                _percent(figures.occupancy),
            )
            for name, figures in report.features.items()
        ],
    }


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _duration(value) -> str:
    if value is None:
        return "—"
    minutes = round(value.total_seconds() / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return (f"{days} d " if days else "") + f"{hours} h {minutes:02} min"


def _csv_response(report, *, filename: str, with_totals: bool) -> HttpResponse:
    response = HttpResponse(
        report_csv(report, with_totals=with_totals), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _context(lot_admin, request: HttpRequest, period: Period) -> dict:
    return {
        **lot_admin.admin_site.each_context(request),
        "opts": lot_admin.model._meta,
        "period": period,
        "presets": list(PRESETS.items()),
        "weekdays": WEEKDAYS,
        "has_view_permission": True,
    }


def report_view(lot_admin, request: HttpRequest, object_id: str) -> HttpResponse:
    """A lot's business over a period; `?export=csv` for the same numbers as CSV."""
    lot = scoped_object_or_404(lot_admin, request, object_id)
    period = _period(lot_admin, request, lot)
    report = lots_report(lots=[lot], period=period)
    if request.GET.get("export") == "csv":
        return _csv_response(
            report, filename=f"{lot.slug}-{period.first}-{period.last}.csv", with_totals=False
        )
    context = {
        **_context(lot_admin, request, period),
        "title": f"Report of {lot.name}",
        "subtitle": period.label,
        "original": lot,
        "lot": lot,
        "figures": _figures(report.lots[0]),
    }
    return TemplateResponse(request, "admin/lots/lot/report.html", context)


def reports_all_view(lot_admin, request: HttpRequest) -> HttpResponse:
    """Every lot the user runs, side by side, and their totals (per currency)."""
    if not lot_admin.has_view_permission(request):
        raise PermissionDenied
    lots = Lot.objects.order_by("name", "pk")
    lot_ids = staff_lot_ids(request)
    if lot_ids is not None:
        lots = lots.filter(pk__in=lot_ids)
    lots = list(lots)
    period = _period(lot_admin, request, lots[0] if len(lots) == 1 else None)
    report = lots_report(lots=lots, period=period)
    if request.GET.get("export") == "csv":
        return _csv_response(
            report, filename=f"lots-{period.first}-{period.last}.csv", with_totals=True
        )
    context = {
        **_context(lot_admin, request, period),
        "title": "Reports of your lots" if lot_ids is not None else "Reports of every lot",
        "subtitle": period.label,
        "rows": [_figures(each) for each in report.lots],
        "totals": [_figures(total) for total in report.totals],
    }
    return TemplateResponse(request, "admin/lots/lot/reports.html", context)


def attention_view(lot_admin, request: HttpRequest, object_id: str) -> HttpResponse:
    """What needs the lot's staff, with the actions that resolve it (POST)."""
    lot = scoped_object_or_404(lot_admin, request, object_id)
    reservation_admin = lot_admin.admin_site.get_model_admin(Reservation)
    can_act = reservation_admin.has_change_permission(request)
    if request.method == "POST":
        if not can_act:
            raise PermissionDenied
        _act(reservation_admin, request, lot)
        return HttpResponseRedirect(reverse("admin:lots_lot_attention", args=[lot.pk]))
    attention = lot_attention(lot=lot)
    for reservation in attention.settlements:
        reservation.owed = (
            "—"
            if reservation.amount_due is None
            else admin_money(reservation.amount_due, reservation.currency)
        )
    context = {
        **lot_admin.admin_site.each_context(request),
        "opts": lot_admin.model._meta,
        "title": f"Needs attention at {lot.name}",
        "subtitle": None,
        "original": lot,
        "lot": lot,
        "attention": attention,
        "can_act": can_act,
        "changelist_url": reverse("admin:reservations_reservation_changelist")
        + f"?lot__id__exact={lot.pk}&attention=any",
        "has_view_permission": True,
    }
    return TemplateResponse(request, "admin/lots/lot/attention.html", context)


def _act(reservation_admin, request: HttpRequest, lot: Lot) -> None:
    action = request.POST.get("action")
    code = normalize_code(request.POST.get("reservation", ""))
    reservation = Reservation.objects.filter(lot_id=lot.pk, code=code).first()
    if reservation is None:
        raise Http404("Not found.")
    now = timezone.now()
    if action == "retry_settlement":
        if reservation.settlement != Settlement.ATTENTION:
            reservation_admin.message_user(
                request, f"{code}: its settlement needs no retry.", messages.WARNING
            )
            return
        state = reservation_settlement_retry(reservation_id=reservation.pk, now=now)
        reservation_admin.log_change(request, reservation, f"Settlement retried: {state}.")
        level = messages.SUCCESS if state == Settlement.SETTLED else messages.ERROR
        reservation_admin.message_user(
            request, f"{code}: settlement {Settlement(state).label.lower()}.", level
        )
    elif action == "mark_left":
        if reservation.status != Status.PARKED:
            reservation_admin.message_user(request, f"{code}: had left already.", messages.WARNING)
            return
        try:
            result = reservation_depart(
                reservation_id=reservation.pk, at=now, actor=Actor.STAFF, actor_user=request.user
            )
        except ApplicationError as exc:
            reservation_admin.message_user(
                request, f"{code}: not marked left. {exc.detail}", messages.ERROR
            )
            return
        done = result.reservation
        overstay = admin_money(done.overstay_amount, done.currency)
        message = f"marked left now; overstay charged {overstay}."
        reservation_admin.log_change(request, reservation, message)
        reservation_admin.message_user(request, f"{code}: {message}", messages.SUCCESS)
    else:
        reservation_admin.message_user(request, "Unknown action.", messages.ERROR)


def page_links(request: HttpRequest, lot: Lot) -> list[tuple[str, str]]:
    """On a lot's page: the needs-attention page with how many items it has."""
    count = lots_attention_counts(lot_ids=[lot.pk])[lot.pk]
    return [(reverse("admin:lots_lot_attention", args=[lot.pk]), f"Needs attention ({count})")]


def lot_links(lot: Lot) -> list[tuple[str, str]]:
    return [(reverse("admin:lots_lot_report", args=[lot.pk]), "Report")]
