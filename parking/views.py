"""The booking website: find a lot, reserve, pay, and manage reservations.

Views are thin: a form checks the input, a selector reads or a service writes,
a template renders. A service's refusal (ApplicationError) is shown next to the
field it is about, or as a message, never as an error page.
"""

from __future__ import annotations

import json
import logging
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, ngettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.i18n import set_language as django_set_language

from config.csp import allow_stripe_js
from config.errors import ApplicationError, Conflict, IdempotencyKeyReused, NotFound
from config.money import format_money
from config.net import client_ip
from config.throttles import BookingThrottle, retry_after
from lots.constants import VehicleType
from lots.features import SpotFeature, spot_needs
from lots.models import Lot
from lots.selectors import (
    NEAR_DEFAULT_RADIUS_M,
    lot_get,
    lot_list,
    spot_counts,
    spot_feature_counts,
)
from parking import forms, limits
from parking.calendar import reservation_ics
from parking.models import Vehicle
from parking.selectors import api_tokens_active
from parking.services import (
    api_token_revoke,
    saved_card_remove,
    signup_pending,
    user_language_set,
    user_signup,
    user_signup_confirm,
    vehicle_add,
    vehicle_remove,
    vehicle_update,
)
from parking.templatetags.parkspot import late_cancel_rule, lot_time_tz, site_time
from payments.models import Payment
from payments.services import payment_cards_list
from reservations.models import Actor, Reservation, ReservationExtension, Status
from reservations.selectors import (
    ReservationRow,
    Terms,
    local_time_folds,
    lot_availability,
    lot_cities,
    lot_closures_ahead,
    lot_search,
    receipt_for_user,
    reservation_extension_applied,
    reservation_extension_quote,
    reservation_overview_for_user,
    reservation_row_for_user,
    reservation_terms,
    reservation_terms_once_paid,
    status_now,
    window_terms,
)
from reservations.services import (
    reservation_cancel,
    reservation_complete,
    reservation_create,
    reservation_extend,
    reservation_payment_setup,
)
from reservations.services.extension import EXTENDABLE

log = logging.getLogger(__name__)

LOGIN_URL = "login"
SEARCH_RESULTS_LIMIT = 100

# Service fields with another name on the website's forms.
RESERVE_FIELDS = {"vehicle_plate": "vehicle", "lot_id": None}


def _login_required(view):
    return login_required(view, login_url=LOGIN_URL)


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    # A path on this site only: redirect() takes a word without a "/" for a URL
    # name to look up, and a junk one ("-1") was a NoReverseMatch (500).
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _with_query(url: str, **params) -> str:
    """The URL with these query parameters set (replacing any of the same name)."""
    parts = urlsplit(url)
    query = QueryDict(parts.query, mutable=True)
    for name, value in params.items():
        query[name] = str(value)
    return urlunsplit(parts._replace(query=query.urlencode()))


# --- times -----------------------------------------------------------------------------------


def default_window(tz: zoneinfo.ZoneInfo, now: datetime | None = None) -> tuple[datetime, datetime]:
    """A sensible first window at a lot: from the next full hour, for two hours (wall clock)."""
    local = (now or timezone.now()).astimezone(tz).replace(tzinfo=None)
    start = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return start, start + timedelta(hours=2)


def _latest_zone(zones: list[str]) -> zoneinfo.ZoneInfo:
    """Of these zones, the one whose clocks are furthest ahead now: a wall-clock time
    still to come there is still to come everywhere else."""
    now = timezone.now()
    candidates = [zoneinfo.ZoneInfo(name) for name in zones] or [zoneinfo.ZoneInfo("UTC")]
    return max(candidates, key=lambda tz: now.astimezone(tz).utcoffset())


def _window_query(vehicle_type: str, start: datetime, end: datetime, **extra) -> str:
    return urlencode(
        {
            **extra,
            "vehicle_type": vehicle_type,
            "start": start.strftime("%Y-%m-%dT%H:%M"),
            "end": end.strftime("%Y-%m-%dT%H:%M"),
        }
    )


# --- home and search -------------------------------------------------------------------------


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    cities = lot_cities()
    start, end = default_window(_latest_zone([tz for _, tz in cities]))
    form = forms.SearchForm(
        cities=[city for city, _ in cities],
        initial={"vehicle_type": VehicleType.CAR, "start": start, "end": end},
    )
    lots = list(lot_list().prefetch_related("rates")[:12])
    for lot in lots:
        lot.cheapest = min(lot.rates.all(), key=lambda rate: rate.hourly_amount, default=None)
    context = {"form": form, "lots": lots, "zones_json": json.dumps(dict(cities))}
    return render(request, "parking/home.html", context)


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    cities = lot_cities()
    names = [city for city, _ in cities]
    if {"start", "end"} & set(request.GET):
        form = forms.SearchForm(request.GET, cities=names)
    else:
        city = request.GET.get("city", "")
        zones = [tz for name, tz in cities if name == city] or [tz for _, tz in cities]
        start, end = default_window(_latest_zone(zones))
        form = forms.SearchForm(
            cities=names,
            initial={
                "city": city if city in names else "",
                "vehicle_type": request.GET.get("vehicle_type") or VehicleType.CAR,
                "start": start,
                "end": end,
            },
        )
    context: dict = {"form": form, "searched": False, "zones_json": json.dumps(dict(cities))}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        offers = lot_search(
            city=data["city"] or None,
            q=data["q"] or None,
            near=data["near"],
            vehicle_type=data["vehicle_type"],
            local_start=data["start"],
            local_end=data["end"],
            needs=spot_needs(data["features"]),
        )
        available = [offer for offer in offers if offer.is_free]
        context.update(
            # Not "every spot is taken" when the times themselves cannot be booked.
            window_problem="" if available else _window_problem(offers, data["city"]),
            searched=True,
            available=available[:SEARCH_RESULTS_LIMIT],
            more_available=max(0, len(available) - SEARCH_RESULTS_LIMIT),
            unavailable=[offer for offer in offers if not offer.is_free][:SEARCH_RESULTS_LIMIT],
            window_query=_window_query(data["vehicle_type"], data["start"], data["end"])
            + (
                "&" + urlencode({"features": data["features"]}, doseq=True)
                if data["features"]
                else ""
            ),
            reserve=_search_reserve_fields(request, data),
            search_summary=" · ".join(
                (
                    str(VehicleType(data["vehicle_type"]).label),
                    data["city"] or gettext("All cities"),
                    _local_window(data["start"], data["end"]),
                )
            ),
            vehicle_label=VehicleType(data["vehicle_type"]).label.lower(),
            city=data["city"],
            q=data["q"],
            near=data["near"] is not None,
            near_radius_km=NEAR_DEFAULT_RADIUS_M // 1000,
            nothing_found=not offers and bool(data["q"] or data["near"]),
        )
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "parking/search.html", context, status=status)


def _local_window(start: datetime, end: datetime) -> str:
    """Thu 5 Mar 2026, 10:00 – 12:00 (both dates when it spans midnight)."""
    until = f"{end:%H:%M}" if start.date() == end.date() else site_time(end)
    return f"{site_time(start)} – {until}"


def _search_reserve_fields(request: HttpRequest, data: dict) -> dict:
    """What each result's Reserve button posts: the searched window, the driver's
    vehicle of that type, and a fresh idempotency key (per result)."""
    fitting = [v for v in _user_vehicles(request) if v.vehicle_type == data["vehicle_type"]]
    return {
        "vehicle_type": data["vehicle_type"],
        "start": data["start"].strftime("%Y-%m-%dT%H:%M"),
        "end": data["end"].strftime("%Y-%m-%dT%H:%M"),
        "vehicle": max(fitting, key=lambda v: v.pk).pk if fitting else "",
        "key": uuid.uuid4().hex[:40],
        "features": data.get("features") or [],
    }


def _window_problem(offers: list, city: str) -> str:
    """Why no lot can take the searched times, when that is the times' fault (not
    a full lot): one sentence, or "" if some lot could have taken them."""
    codes = {offer.problem_code for offer in offers}
    if not offers or "" in codes:
        return ""
    if codes == {"start_in_past"}:
        if city:
            return gettext(
                "These times have already passed in %(city)s. Choose times still to come."
            ) % {"city": city}
        return gettext("These times have already passed. Choose times still to come.")
    if codes == {"start_too_far_ahead"}:
        return gettext(
            "Bookings open %(days)s days ahead: these times are too far away yet. "
            "Choose times sooner."
        ) % {"days": settings.BOOKING_MAX_AHEAD_DAYS}
    if len(codes) == 1:
        return offers[0].problem
    if city:
        return gettext(
            "These times cannot be booked at any car park in %(city)s: see why below."
        ) % {"city": city}
    return gettext("These times cannot be booked at any car park: see why below.")


# --- a lot, its live quote, and reserving ------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    free_spots: int
    price_amount: int | None
    currency: str
    start: datetime
    end: datetime
    vehicle_type: str
    terms: Terms | None = None  # every charge of booking this window now
    features: str = ""  # what the spot must have, in words ("EV charging and covered")

    @property
    def is_free(self) -> bool:
        return self.free_spots > 0 and self.price_amount is not None

    @property
    def vehicle_label(self) -> str:
        return VehicleType(self.vehicle_type).label.lower()


def _lot_or_404(lot_id: str) -> Lot:
    try:
        return lot_get(lot_id=lot_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


def _offered_types(lot: Lot) -> list[str]:
    counts = spot_counts(lot)
    return [rate.vehicle_type for rate in lot.rates.all() if counts.get(rate.vehicle_type)]


def _user_vehicles(request: HttpRequest) -> list[Vehicle]:
    # One read per request: the lot page asks for them more than once.
    if hasattr(request, "_vehicles"):
        return request._vehicles
    if not request.user.is_authenticated:
        return []
    request._vehicles = list(request.user.vehicles.order_by("plate"))
    return request._vehicles


def _offered_features(lot: Lot) -> list[str]:
    return [name for name, count in spot_feature_counts(lot).items() if count]


def _reserve_form(request: HttpRequest, lot: Lot, data) -> forms.ReserveForm:
    return forms.ReserveForm(
        data,
        lot=lot,
        vehicle_types=_offered_types(lot),
        features=_offered_features(lot),
        vehicles=_user_vehicles(request),
    )


def _window_data(request: HttpRequest, lot: Lot) -> QueryDict:
    """The window a lot page shows first: the window in its address, or the next
    two hours, for the driver's own kind of vehicle when the lot takes it."""
    if {"start", "end"} & set(request.GET):
        data = request.GET.copy()
    else:
        offered = _offered_types(lot)
        preferred = [v.vehicle_type for v in _user_vehicles(request) if v.vehicle_type in offered]
        vehicle_type = preferred or [t for t in (VehicleType.CAR,) if t in offered] or offered
        start, end = default_window(lot.tz)
        data = QueryDict(_window_query(vehicle_type[0] if vehicle_type else "", start, end))
        data = data.copy()
    if "vehicle" not in data:
        # The driver's vehicle of the chosen type (the latest added) is chosen for
        # them: its plate is what gets them through the gate. "Not now" stays offered.
        fitting = [v for v in _user_vehicles(request) if v.vehicle_type == data.get("vehicle_type")]
        if fitting:
            data["vehicle"] = str(max(fitting, key=lambda v: v.pk).pk)
    data["idempotency_key"] = uuid.uuid4().hex  # never one from an address
    return data


def _quote(form: forms.WindowForm, lot: Lot) -> Quote | None:
    """The price and free spots of the form's window, or None (errors on the form).

    Also after a booking failed on a valid form (e.g. the last spot went)."""
    if not hasattr(form, "cleaned_data"):
        form.is_valid()
    data = form.cleaned_data
    if any(form.has_error(name) for name in ("vehicle_type", "start", "end")):
        return None
    if not all(key in data for key in ("vehicle_type", "start_utc", "end_utc")):
        return None
    try:
        needs = spot_needs(data.get("features") or ())
        answer = lot_availability(
            lot_id=lot.slug,
            vehicle_type=data["vehicle_type"],
            start=data["start_utc"],
            end=data["end_utc"],
            needs=needs,
        )
    except ApplicationError as exc:
        form.add_application_error(exc)
        return None
    terms = None
    if answer.tariff is not None:
        terms = window_terms(
            lot=lot,
            start=answer.start,
            end=answer.end,
            tariff=answer.tariff,
        )
    return Quote(
        free_spots=answer.free_spots,
        price_amount=answer.price_amount,
        currency=answer.currency,
        start=answer.start,
        end=answer.end,
        vehicle_type=answer.vehicle_type,
        terms=terms,
        features=needs.describe(),
    )


def _lot_context(lot: Lot, form: forms.WindowForm, quote: Quote | None) -> dict:
    data = getattr(form, "cleaned_data", {})
    query = ""
    if data.get("vehicle_type") and data.get("start") and data.get("end"):
        query = _window_query(data["vehicle_type"], data["start"], data["end"])
        if data.get("features"):  # kept in the address, so that a reload keeps them ticked
            query += "&" + urlencode({"features": data["features"]}, doseq=True)
    counts = spot_counts(lot)
    lot_url = reverse("lot_detail", args=[lot.slug])
    return {
        "lot": lot,
        "form": form,
        "quote": quote,
        "rates": [(rate, counts.get(rate.vehicle_type, 0)) for rate in lot.rates.all()],
        "offered": _offered_types(lot),
        "lot_url": lot_url,
        "window_query": query,
        "here_url": f"{lot_url}?{query}" if query else lot_url,
        "timezone_label": lot.tz.key.replace("_", " "),
        "now": timezone.now(),
        "feature_counts": [
            (SpotFeature(name).label, count)
            for name, count in spot_feature_counts(lot).items()
            if count
        ],
        "closures": lot_closures_ahead(lot=lot),
    }


@require_GET
def lot_detail(request: HttpRequest, lot_id: str) -> HttpResponse:
    lot = _lot_or_404(lot_id)
    form = _reserve_form(request, lot, _window_data(request, lot))
    quote = _quote(form, lot)
    return render(request, "parking/lot_detail.html", _lot_context(lot, form, quote))


@require_GET
def lot_quote(request: HttpRequest, lot_id: str) -> HttpResponse:
    """The live quote of the lot page (htmx): price and free spots for the window.

    Field errors travel out of band to their places beside the fields."""
    lot = _lot_or_404(lot_id)
    if not _is_htmx(request):
        return redirect(f"{reverse('lot_detail', args=[lot.slug])}?{request.GET.urlencode()}")
    form = _reserve_form(request, lot, request.GET)
    quote = _quote(form, lot)
    context = _lot_context(lot, form, quote)
    response = render(request, "parking/_quote_response.html", context)
    if context["window_query"]:
        # Reloading the page or sharing its address keeps the chosen window.
        response["HX-Replace-Url"] = context["here_url"]
    return response


@require_http_methods(["GET", "POST"])
@_login_required
def reserve(request: HttpRequest, lot_id: str) -> HttpResponse:
    lot = _lot_or_404(lot_id)
    if request.method == "GET":
        return redirect("lot_detail", lot_id=lot.slug)
    form = _reserve_form(request, lot, request.POST)
    status = 400
    wait = retry_after(BookingThrottle(), request)
    if wait is not None:
        form.is_valid()
        minutes = max(1, round(wait / 60))
        form.add_error(
            None,
            ngettext(
                "You have made a lot of bookings in a short time. "
                "Please try again in %(minutes)d minute.",
                "You have made a lot of bookings in a short time. "
                "Please try again in %(minutes)d minutes.",
                minutes,
            )
            % {"minutes": minutes},
        )
        quote = _quote(form, lot)
        response = render(
            request, "parking/lot_detail.html", _lot_context(lot, form, quote), status=429
        )
        response["Retry-After"] = str(wait)
        return response
    if form.is_valid():
        data = form.cleaned_data
        try:
            result = reservation_create(
                user=request.user,
                lot_id=lot.slug,
                vehicle_type=data["vehicle_type"],
                start=data["start_utc"],
                end=data["end_utc"],
                vehicle_plate=data["vehicle_plate"],
                features=data.get("features") or (),
                idempotency_key=f"web:{key}" if (key := data["idempotency_key"]) else None,
            )
        except IdempotencyKeyReused as exc:
            # A form already used for another booking (e.g. after going back).
            fresh = request.POST.copy()
            fresh["idempotency_key"] = uuid.uuid4().hex
            form = _reserve_form(request, lot, fresh)
            form.is_valid()
            form.add_error(
                None,
                gettext(
                    "This form was already used for another booking. "
                    "Check the details and press Reserve again."
                ),
            )
            status = exc.status
        except ApplicationError as exc:
            form.add_application_error(exc, fields=RESERVE_FIELDS)
            if exc.code in ("no_spot_available", "no_spot_with_features"):
                messages.error(request, _spot_gone_message(lot, data["vehicle_type"], exc))
            status = exc.status
        else:
            # The pass and the reminders are e-mailed in the language booked in.
            user_language_set(user=request.user, language=translation.get_language())
            return redirect("reservation_pay", code=result.reservation.code)
    quote = _quote(form, lot)
    return render(request, "parking/lot_detail.html", _lot_context(lot, form, quote), status=status)


def _spot_gone_message(lot: Lot, vehicle_type: str, exc: ApplicationError) -> str:
    kind = VehicleType(vehicle_type).label.lower()
    if exc.code == "no_spot_with_features":
        return gettext(
            "Sorry, no %(kind)s spot at %(lot)s with what you ticked is free for those times "
            "any more. Untick what you can do without, try other times, or another lot."
        ) % {"kind": kind, "lot": lot.name}
    return gettext(
        "Sorry, the last free %(kind)s spot at %(lot)s for those times has just been taken. "
        "Try other times, or another lot nearby."
    ) % {"kind": kind, "lot": lot.name}


# --- paying ------------------------------------------------------------------------------------


def _row_or_404(request: HttpRequest, code: str) -> ReservationRow:
    try:
        return reservation_row_for_user(user=request.user, code=code)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


def _hold_lapsed(reservation: Reservation, now: datetime | None = None) -> bool:
    return status_now(reservation, now) == Status.EXPIRED


def _again_url(reservation: Reservation) -> str:
    """The lot page with the same window, to book again."""
    tz = reservation.lot.tz
    start = reservation.start.astimezone(tz).replace(tzinfo=None)
    end = reservation.end.astimezone(tz).replace(tzinfo=None)
    folds = {
        f"{name}_fold": moment.astimezone(tz).fold
        for name, moment, local in (
            ("start", reservation.start, start),
            ("end", reservation.end, end),
        )
        if local_time_folds(local, tz)
    }
    if reservation.start <= timezone.now():
        start, end = default_window(tz)
        folds = {}
    # The same instants, even in an hour the clocks pass twice.
    query = _window_query(reservation.vehicle_type, start, end, **folds)
    return f"{reverse('lot_detail', args=[reservation.lot.slug])}?{query}"


def _pay_context(reservation: Reservation, payment: Payment | None) -> dict:
    now = timezone.now()
    seconds_left = 0
    if reservation.hold_expires_at:
        seconds_left = max(0, int((reservation.hold_expires_at - now).total_seconds()))
    return {
        "reservation": reservation,
        "payment": payment,
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "stripe_js_url": settings.STRIPE_JS_URL,
        "test_mode": settings.STRIPE_PUBLISHABLE_KEY.startswith("pk_test"),
        "seconds_left": seconds_left,
        "charges": (charges := reservation_terms_once_paid(reservation, now=now)),
        "capture_later": not charges.charged_at_once,
        "again_url": _again_url(reservation),
        "saved_cards": _saved_cards(reservation.user, payment),
    }


def _saved_cards(user, payment: Payment | None) -> list:
    """The driver's saved cards (asked of Stripe only if they ever paid), but
    the one just declined for this booking; none when Stripe does not answer:
    a new card still works."""
    if not settings.STRIPE_PUBLISHABLE_KEY:
        return []
    try:
        cards = payment_cards_list(user=user)
    except ApplicationError as exc:
        log.warning("Could not list the saved cards of user %s: %s", user.pk, exc.code)
        return []
    declined = (
        payment.payment_method_id
        if isinstance(payment, Payment) and payment.status == Payment.Status.FAILED
        else ""
    )
    return [card for card in cards if card.id != declined]


@allow_stripe_js
@require_http_methods(["GET", "POST"])
@_login_required
def reservation_pay(request: HttpRequest, code: str) -> HttpResponse:
    row = _row_or_404(request, code)
    reservation = row.reservation
    if reservation.status != Status.PENDING_PAYMENT and reservation.status != Status.EXPIRED:
        if reservation.status == Status.CANCELLED:
            messages.info(
                request, gettext("This reservation was cancelled; there is nothing to pay.")
            )
        return redirect("reservation_detail", code=reservation.code)
    if _hold_lapsed(reservation):
        return _render_hold_expired(request, reservation, status=200)

    error_key = f"pay_error:{reservation.code}"
    if request.method == "POST":
        data = request.POST.copy()
        if not data.get("payment_method") and data.get("card_choice", "").startswith("pm_"):
            data["payment_method"] = data["card_choice"]  # a saved card, posted without script
        form = forms.PayForm(data)
        if form.is_valid():
            try:
                reservation_complete(
                    reservation_id=reservation.pk,
                    payment_method_id=form.cleaned_data["payment_method"],
                )
            except ApplicationError as exc:
                if exc.code == "hold_expired":
                    reservation.refresh_from_db()
                    return _render_hold_expired(request, reservation, status=exc.status)
                error = _payment_error(exc)
            else:
                messages.success(
                    request,
                    gettext(
                        "Paid — your spot is booked. Show this pass (or say its code) at the gate."
                    ),
                )
                return redirect("reservation_detail", code=reservation.code)
        else:
            error = " ".join(form.errors.get("payment_method", [])) or gettext(
                "Enter your card again."
            )
        # Post/redirect/get: reloading the page after a refusal shows it again
        # instead of posting the card a second time.
        request.session[error_key] = error
        return _see_other(reverse("reservation_pay", args=[reservation.code]))
    context = _pay_context(reservation, row.payment)
    context["error"] = request.session.pop(error_key, "")
    # After a refusal the card form is open: the driver is likely to try another card.
    context["choose_new"] = bool(context["error"])
    return render(request, "parking/pay.html", context)


class _SeeOther(HttpResponseRedirect):
    status_code = 303  # after a POST: the browser GETs the page


def _see_other(url: str) -> HttpResponse:
    return _SeeOther(url)


@require_POST
@_login_required
def reservation_pay_setup(request: HttpRequest, code: str) -> JsonResponse:
    """Pay was pressed: what Stripe.js needs to turn the card into a PaymentMethod."""
    reservation = _row_or_404(request, code).reservation
    try:
        secret = reservation_payment_setup(reservation_id=reservation.pk)
    except ApplicationError as exc:
        body = {"code": exc.code, "detail": _payment_error(exc)}
        if exc.code == "hold_expired":
            body["detail"] = gettext("The hold on your spot has run out. Nothing was charged.")
        return JsonResponse(body, status=exc.status)
    return JsonResponse({"client_secret": secret})


def _payment_error(exc: ApplicationError) -> str:
    if exc.code in ("payment_declined", "card_declined") or exc.status == 402:
        # The card network's own words are English; said in the driver's language.
        if translation.get_language().startswith("en") and exc.detail:
            detail = exc.detail.rstrip(".")
        else:
            detail = gettext("Your card was declined")
        return gettext("%(detail)s. Nothing was charged. Try another card.") % {"detail": detail}
    if exc.code == "payment_provider_unavailable":
        return gettext(
            "The payment service is not answering right now. Nothing was charged; "
            "try again in a moment."
        )
    if exc.code == "payment_in_progress":
        return gettext(
            "Your payment is still being processed. Wait a moment, then reload this page."
        )
    return exc.detail


def _render_hold_expired(request: HttpRequest, reservation: Reservation, status: int):
    return render(
        request,
        "parking/hold_expired.html",
        {"reservation": reservation, "again_url": _again_url(reservation)},
        status=status,
    )


# --- a reservation, the pass, cancelling ------------------------------------------------------


@dataclass(frozen=True)
class CancelTerms:
    """What cancelling now costs, in sentences, from the policy module's terms."""

    allowed: bool
    charge_amount: int  # what the driver pays if they cancel now
    summary: str  # one sentence for the pass page
    detail: str  # what happens, for the confirmation page
    policy: str = ""  # the rule, for the confirmation page


def cancel_terms(
    reservation: Reservation, payment: Payment | None, now: datetime | None = None
) -> CancelTerms:
    now = now or timezone.now()
    terms = reservation_terms(reservation, now=now)
    charge = terms.cancellation_charge_now
    if charge is None:
        return CancelTerms(allowed=False, charge_amount=0, summary="", detail="")
    rule = late_cancel_rule(terms)
    if reservation.status == Status.PENDING_PAYMENT:
        return CancelTerms(
            allowed=True,
            charge_amount=0,
            summary=gettext("Nothing has been charged yet."),
            detail=gettext(
                "Nothing has been charged. Cancelling gives the spot back straight away."
            ),
            policy=rule,
        )
    price = format_money(reservation.price_amount, reservation.currency)
    charged_at_booking = payment is not None and payment.capture_mode == "immediate"
    if charge == 0:
        if charged_at_booking:
            detail = gettext(
                "Cancelling now is free: the %(price)s you paid is refunded in full."
            ) % {"price": price}
        else:
            detail = gettext(
                "Cancelling now is free: the %(price)s hold on your card is released."
            ) % {"price": price}
        until = lot_time_tz(terms.free_cancellation_until, reservation.lot)
        return CancelTerms(
            allowed=True,
            charge_amount=0,
            summary=gettext("Free cancellation until %(until)s.") % {"until": until},
            detail=detail,
            policy=rule,
        )
    cost = format_money(charge, reservation.currency)
    rest = format_money(reservation.price_amount - charge, reservation.currency)
    start = lot_time_tz(reservation.start, reservation.lot)
    words = {"start": start, "cost": cost, "rest": rest}
    if charge >= reservation.price_amount:
        detail = gettext("Your reservation started at %(start)s. Cancelling now costs %(cost)s.")
    elif charged_at_booking:
        detail = gettext(
            "Your reservation started at %(start)s. Cancelling now costs %(cost)s; "
            "the other %(rest)s you paid is refunded."
        )
    else:
        detail = gettext(
            "Your reservation started at %(start)s. Cancelling now costs %(cost)s; "
            "the other %(rest)s of the hold on your card is released."
        )
    return CancelTerms(
        allowed=True,
        charge_amount=charge,
        summary=gettext("Your reservation started at %(start)s; cancelling now costs %(cost)s.")
        % words,
        detail=detail % words,
        policy=rule,
    )


@require_GET
@_login_required
def reservation_detail(request: HttpRequest, code: str) -> HttpResponse:
    row = _row_or_404(request, code)
    reservation = row.reservation
    if reservation.code != code:
        return redirect("reservation_detail", code=reservation.code)
    context = {
        "reservation": reservation,
        "payment": row.payment,
        "terms": cancel_terms(reservation, row.payment),
        "charges": reservation_terms(reservation),
        "hold_lapsed": _hold_lapsed(reservation),
        "again_url": _again_url(reservation),
        "is_pass": reservation.status in (Status.CONFIRMED, Status.PARKED),
        "can_extend": can_extend(reservation),
    }
    return render(request, "parking/reservation_detail.html", context)


@require_GET
@_login_required
def reservation_receipt_view(request: HttpRequest, code: str) -> HttpResponse:
    """The receipt of a settled reservation: each charge and refund as the
    payments recorded them (anyone else's, or one not settled yet: 404)."""
    try:
        receipt = receipt_for_user(user=request.user, code=code)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    reservation = receipt.reservation
    if reservation.code != code:
        return redirect("reservation_receipt", code=reservation.code)
    return render(
        request,
        "parking/reservation_receipt.html",
        {"receipt": receipt, "reservation": reservation},
    )


@require_GET
@_login_required
def reservation_calendar(request: HttpRequest, code: str) -> HttpResponse:
    """The reservation as an iCalendar file, for "Add to calendar" on the pass."""
    reservation = _row_or_404(request, code).reservation
    site = settings.SITE_URL.rstrip("/")
    body = reservation_ics(
        reservation,
        site_url=site,
        pass_url=site + reverse("reservation_detail", args=[reservation.code]),
        arrive_from=reservation_terms(reservation).early_entry_from,
        sequence=reservation.extensions.filter(state=ReservationExtension.State.APPLIED).count(),
    )
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="parkspot-{reservation.code}.ics"'
    return response


@require_http_methods(["GET", "POST"])
@_login_required
def reservation_cancel_view(request: HttpRequest, code: str) -> HttpResponse:
    row = _row_or_404(request, code)
    reservation = row.reservation
    terms = cancel_terms(reservation, row.payment)
    if not terms.allowed:
        messages.info(
            request,
            gettext("A %(status)s reservation cannot be cancelled.")
            % {"status": reservation.get_status_display().lower()},
        )
        return redirect("reservation_detail", code=reservation.code)
    if request.method == "POST":
        try:
            result = reservation_cancel(
                reservation_id=reservation.pk, actor=Actor.DRIVER, actor_user=request.user
            )
        except ApplicationError as exc:
            messages.error(request, exc.detail)
        else:
            if result.changed:
                messages.success(
                    request,
                    gettext("Reservation %(code)s is cancelled.") % {"code": reservation.code},
                )
        return redirect("reservation_detail", code=reservation.code)
    return render(
        request,
        "parking/reservation_cancel.html",
        {
            "reservation": reservation,
            "payment": row.payment,
            "terms": terms,
        },
    )


def can_extend(reservation: Reservation, now: datetime | None = None) -> bool:
    return reservation.status in EXTENDABLE and (now or timezone.now()) < reservation.end


@require_http_methods(["GET", "POST"])
@_login_required
def reservation_extend_view(request: HttpRequest, code: str) -> HttpResponse:
    """More time in the same spot: choose a new departure (lot time), see what it
    costs, confirm; paid on the card the booking was paid with."""
    row = _row_or_404(request, code)
    reservation = row.reservation
    key = request.POST.get("key", "")[:64]
    if key and reservation_extension_applied(reservation, key=f"web:{key}"):
        # Confirmed already (a double click, a reload): the pass shows the result.
        return redirect("reservation_detail", code=reservation.code)
    if not can_extend(reservation):
        messages.info(request, gettext("This reservation can no longer be extended."))
        return redirect("reservation_detail", code=reservation.code)
    local_end = reservation.end.astimezone(reservation.lot.tz).replace(tzinfo=None)
    form = forms.ExtendForm(
        request.POST or None,
        reservation=reservation,
        initial={"end": local_end + timedelta(hours=1)},
    )
    quote = None
    if request.method == "POST" and form.is_valid():
        new_end = form.cleaned_data["end_utc"]
        key = form.cleaned_data.get("key")
        as_quoted = form.cleaned_data.get("quoted") == form.cleaned_data["end"].isoformat()
        if request.POST.get("confirm") and key and as_quoted:
            try:
                result = reservation_extend(
                    reservation_id=reservation.pk,
                    end=new_end,
                    actor_user=request.user,
                    idempotency_key=f"web:{key}",
                )
            except ApplicationError as exc:
                form.add_application_error(exc)
            else:
                extension = result.extension
                until = lot_time_tz(result.reservation.end, reservation.lot)
                paid = format_money(extension.amount, extension.currency)
                total = format_money(result.reservation.price_amount, reservation.currency)
                messages.success(
                    request,
                    gettext(
                        "Extended until %(until)s. The extra time costs %(paid)s; "
                        "your new total is %(total)s."
                    )
                    % {"until": until, "paid": paid, "total": total},
                )
                return redirect("reservation_detail", code=reservation.code)
        else:
            quote = reservation_extension_quote(reservation, new_end=new_end)
            if not quote.spot_free:
                label = reservation.spot.label
                if quote.free_until <= reservation.end:
                    problem = gettext(
                        "Spot %(label)s is booked by someone else right after your departure, "
                        "so this booking cannot be extended."
                    ) % {"label": label}
                else:
                    problem = gettext(
                        "Spot %(label)s is booked by someone else from %(until)s. "
                        "Choose a departure at or before then."
                    ) % {"label": label, "until": lot_time_tz(quote.free_until, reservation.lot)}
                form.add_error("end", problem)
                quote = None
            else:
                # A fresh key for this price: confirming it twice extends once.
                local = form.cleaned_data["end"]
                form = forms.ExtendForm(
                    initial={"end": local, "key": uuid.uuid4().hex, "quoted": local.isoformat()},
                    reservation=reservation,
                )
    return render(
        request,
        "parking/reservation_extend.html",
        {"reservation": reservation, "form": form, "quote": quote, "payment": row.payment},
    )


@require_GET
@_login_required
def reservation_list(request: HttpRequest) -> HttpResponse:
    overview = reservation_overview_for_user(user=request.user)
    return render(request, "parking/reservation_list.html", {"overview": overview})


# --- accounts and vehicles ---------------------------------------------------------------------


def _too_many(request: HttpRequest, heading: str, sentence: str, wait: int) -> HttpResponse:
    """429 with Retry-After, and a page that says what happened and when to try again."""
    minutes = max(1, -(-wait // 60))
    context = {
        "heading": heading,
        "sentence": sentence,
        "again": ngettext(
            "Try again in %(minutes)d minute.", "Try again in %(minutes)d minutes.", minutes
        )
        % {"minutes": minutes},
    }
    response = render(request, "parking/too_many_requests.html", context, status=429)
    response["Retry-After"] = str(wait)
    return response


SIGNUP_EMAIL_SESSION_KEY = "signup_email"


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Sign up: the answer is the same whether the address has an account or not;
    the e-mail tells (parking.services.user_signup)."""
    next_url = _safe_next(request, reverse("home"))
    if request.user.is_authenticated:
        return redirect(next_url)
    form = forms.SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        wait = limits.SIGNUPS_PER_CLIENT.hit(client_ip(request))
        if wait is not None:
            return _too_many(
                request,
                gettext("Too many sign-ups"),
                gettext("Too many accounts were asked for from this network in a short time."),
                wait,
            )
        try:
            email = user_signup(
                **form.cleaned_data, next_path=next_url, language=translation.get_language()
            )
        except ApplicationError as exc:
            form.add_application_error(exc)
        else:
            request.session[SIGNUP_EMAIL_SESSION_KEY] = email
            return redirect("signup_sent")
    status = 400 if form.is_bound and form.errors else 200
    return render(
        request, "registration/signup.html", {"form": form, "next": next_url}, status=status
    )


@require_GET
def signup_sent(request: HttpRequest) -> HttpResponse:
    email = request.session.get(SIGNUP_EMAIL_SESSION_KEY, "")
    return render(request, "registration/signup_sent.html", {"email": email})


@require_http_methods(["GET", "POST"])
def signup_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the sign-up e-mail. Opening it shows a button; pressing it
    opens the account and logs in (a link checker that only fetches the page
    opens nothing)."""
    try:
        pending = signup_pending(token=token)
    except NotFound as exc:
        return render(request, "registration/signup_confirm.html", {"invalid": exc.detail})
    if request.method == "GET":
        return render(request, "registration/signup_confirm.html", {"signup": pending})
    try:
        confirmed = user_signup_confirm(token=token)
    except NotFound as exc:  # confirmed through another request meanwhile
        return render(request, "registration/signup_confirm.html", {"invalid": exc.detail})
    except Conflict as exc:
        messages.info(request, exc.detail)
        return redirect("login")
    login(request, confirmed.user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, gettext("Welcome to ParkSpot! Your account is ready."))
    next_url = confirmed.next_path
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("home")
    return redirect(next_url)


# No CSRF token: a forged switch only changes a language, and a token in every
# page's footer would make each rendering differ (pages that must not tell
# whether an address has an account are compared byte for byte) and set a cookie
# on every first visit.
@csrf_exempt
@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """The language switcher: Django's set_language (a cookie, and back to the
    page), and a signed-in driver's e-mails follow the choice."""
    response = django_set_language(request)
    language = request.POST.get("language", "")
    if request.user.is_authenticated and translation.check_for_language(language):
        user_language_set(user=request.user, language=language)
    return response


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = forms.LoginForm
    redirect_authenticated_user = True


class PasswordResetView(auth_views.PasswordResetView):
    """Ask for a reset link. The answer is the same whether the address has an
    account or not, and whether or not its e-mails are over their limit
    (THROTTLE_ACCOUNT_EMAIL_RATE); a client asking too often
    (THROTTLE_PASSWORD_RESET_RATE) is told so, whatever the address."""

    template_name = "registration/password_reset_form.html"
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    form_class = forms.ResetForm

    def form_valid(self, form):
        wait = limits.PASSWORD_RESETS_PER_CLIENT.hit(client_ip(self.request))
        if wait is not None:
            return _too_many(
                self.request,
                gettext("Too many password resets"),
                gettext(
                    "Too many password reset links were asked for from this network "
                    "in a short time."
                ),
                wait,
            )
        if limits.EMAILS_PER_ADDRESS.hit(form.cleaned_data["email"].strip().lower()) is None:
            return super().form_valid(form)  # e-mails the link, if there is an account
        return redirect(self.get_success_url())


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """The reset link's page: the new password revokes the account's API tokens
    and ends its sessions (forms.NewPasswordForm)."""

    template_name = "registration/password_reset_confirm.html"
    form_class = forms.NewPasswordForm


class LogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("home")

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        messages.info(request, gettext("You are logged out. See you soon!"))
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """The new password revokes the account's API tokens and ends its other
    sessions; this one stays logged in (update_session_auth_hash)."""

    template_name = "parking/password_change.html"
    form_class = forms.ChangePasswordForm
    success_url = reverse_lazy("account")

    def form_valid(self, form):
        messages.success(
            self.request,
            gettext(
                "Your password is changed. You are logged out everywhere else, "
                "and apps using your old tokens must log in again."
            ),
        )
        return super().form_valid(form)


@require_http_methods(["GET", "POST"])
@_login_required
def account(request: HttpRequest) -> HttpResponse:
    """The driver's account: who they are, their vehicles (add one here) and the
    API tokens their apps use (revoke one here)."""
    form = forms.VehicleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            vehicle = vehicle_add(owner=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            form.add_application_error(exc)
        else:
            messages.success(
                request, gettext("%(plate)s is added to your vehicles.") % {"plate": vehicle.plate}
            )
            back = _safe_next(request, "")
            if back:
                # On the way to a booking: back to it, with this vehicle chosen.
                return redirect(
                    _with_query(back, vehicle=vehicle.pk, vehicle_type=vehicle.vehicle_type)
                )
            return redirect("account")
    status = 400 if form.is_bound and form.errors else 200
    context = {
        "next": _safe_next(request, ""),
        "form": form,
        "vehicles": _user_vehicles(request),
        "tokens": api_tokens_active(user=request.user),
        "token_days": settings.API_TOKEN_LIFETIME_DAYS,
        **_account_cards(request.user),
    }
    return render(request, "parking/account.html", context, status=status)


def _account_cards(user) -> dict:
    """The saved cards for the account page, or why they cannot be shown now."""
    if not settings.STRIPE_PUBLISHABLE_KEY:
        return {"cards": [], "cards_problem": ""}
    try:
        return {"cards": payment_cards_list(user=user), "cards_problem": ""}
    except ApplicationError as exc:
        return {"cards": [], "cards_problem": exc.detail}


@require_POST
@_login_required
def saved_card_remove_view(request: HttpRequest, payment_method_id: str) -> HttpResponse:
    """Remove one of the driver's saved cards (another driver's is not found)."""
    try:
        saved_card_remove(user=request.user, payment_method_id=payment_method_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, gettext("The card is removed from your account."))
    return redirect(reverse("account") + "#cards-title")


@require_POST
@_login_required
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of the driver's API tokens (another driver's is not found)."""
    try:
        api_token_revoke(user=request.user, token_id=token_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    messages.success(request, gettext("The token is revoked: the app using it must log in again."))
    return redirect("account")


def _vehicle_or_404(request: HttpRequest, vehicle_id: int) -> Vehicle:
    vehicle = request.user.vehicles.filter(pk=vehicle_id).first()
    if vehicle is None:
        raise Http404("There is no such vehicle.")
    return vehicle


@require_http_methods(["GET", "POST"])
@_login_required
def vehicle_edit(request: HttpRequest, vehicle_id: int) -> HttpResponse:
    vehicle = _vehicle_or_404(request, vehicle_id)
    initial = {
        "plate": vehicle.plate,
        "vehicle_type": vehicle.vehicle_type,
        "nickname": vehicle.nickname,
    }
    form = forms.VehicleForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            vehicle = vehicle_update(owner=request.user, vehicle_id=vehicle.pk, **form.cleaned_data)
        except ApplicationError as exc:
            form.add_application_error(exc)
        else:
            messages.success(request, gettext("%(plate)s is saved.") % {"plate": vehicle.plate})
            return redirect("account")
    status = 400 if form.is_bound and form.errors else 200
    return render(
        request, "parking/vehicle_edit.html", {"form": form, "vehicle": vehicle}, status=status
    )


@require_http_methods(["GET", "POST"])
@_login_required
def vehicle_delete(request: HttpRequest, vehicle_id: int) -> HttpResponse:
    vehicle = _vehicle_or_404(request, vehicle_id)
    if request.method == "POST":
        try:
            vehicle_remove(owner=request.user, vehicle_id=vehicle.pk)
        except ApplicationError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(
                request,
                gettext("%(plate)s is removed from your vehicles.") % {"plate": vehicle.plate},
            )
        return redirect("account")
    return render(request, "parking/vehicle_delete.html", {"vehicle": vehicle})
