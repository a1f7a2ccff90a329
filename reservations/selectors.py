"""Reads about reservations: availability (checkCapacity) and a driver's bookings."""

from __future__ import annotations

import threading
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from config.cache import KEPT_HIT
from config.errors import Conflict, InvalidInput, NotFound
from config.plates import normalize_plate
from lots.features import NO_NEEDS, SpotNeeds
from lots.models import Lot, OpeningHours, Rate, RateRule, Spot
from lots.pricing import PriceLine, Tariff
from lots.selectors import (
    NEAR_DEFAULT_RADIUS_M,
    Schedule,
    flex_rules_of_lots,
    lot_schedule,
    lot_tariff,
    lots_matching,
    lots_near,
    opening_hours_of,
)
from payments.models import Payment
from payments.selectors import payments_for
from reservations import hot_sql, policy
from reservations.allocation import live_blocking_q, overlapping_q, spots_with_q
from reservations.models import (
    Closure,
    Reservation,
    ReservationExtension,
    Settlement,
    Status,
    extension_payment_reference,
    normalize_code,
    payment_reference,
)
from reservations.rules import (
    OutsideOpeningHours,
    check_opening_hours,
    validate_window,
)


@dataclass(frozen=True)
class Availability:
    lot_id: str
    vehicle_type: str
    start: datetime
    end: datetime
    free_spots: int
    price_amount: int | None  # None: the lot has no rate for this vehicle type
    no_show_amount: int | None
    currency: str
    # The rate the price is from (None: no rate), and the price line by line.
    tariff: policy.Tariff | None = None
    breakdown: tuple[PriceLine, ...] = ()

    @property
    def is_free(self) -> bool:
        return self.free_spots > 0


def lot_availability(
    *,
    lot_id: str,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    needs: SpotNeeds = NO_NEEDS,
) -> Availability:
    """Whether one spot is free for the whole window, how many are, and the price;
    with `needs`, only spots that have the features and room for the vehicle.

    Exact: the cache key carries the lot's availability version, which every
    booking bumps in its own transaction, and an answer lives no longer than the
    first hold it counted may lapse or the first parked car may start to overstay.
    """
    now = now or timezone.now()
    validate_window(start=start, end=end, now=now)
    lot = hot_sql.lot_version(lot_id)
    if lot is None:
        raise NotFound("There is no such lot.", code="lot_not_found")
    lot_pk, version, currency = lot

    now_ts = now.timestamp()
    question = (lot_pk, version, vehicle_type, start.timestamp(), end.timestamp(), needs)
    cached = _cached(question, now_ts)
    if cached is not None:
        free, tariff, _ = cached
    else:
        # Only windows the lot is open for are ever cached, and changing its hours
        # bumps its version: a cached answer needs no second look at them.
        schedule = _schedule_at(lot_pk, version)
        if schedule is not None and schedule.hours:
            check_opening_hours(schedule=schedule, start=start, end=end)
        free, tariff, valid_until = _compute(lot_pk, vehicle_type, start, end, now, needs)
        ttl = min(settings.AVAILABILITY_CACHE_SECONDS, valid_until - now_ts)
        if ttl >= 1:
            cache.set(_shared_key(question), (free, tariff, valid_until), timeout=ttl)
            _keep(question, (free, tariff, valid_until))
    price = no_show = booking = None
    if tariff is not None:
        booking = policy.Booking(start=start, end=end, tariff=tariff, grace=timedelta(0))
        price, no_show = booking.price, policy.no_show_charge(booking)
    return Availability(
        lot_id=lot_id,
        vehicle_type=vehicle_type,
        start=start,
        end=end,
        free_spots=free,
        price_amount=price,
        no_show_amount=no_show,
        currency=currency,
        tariff=booking.tariff if booking else None,
        breakdown=booking.breakdown if booking else (),
    )


# Answers this process has read or worked out lately, by the same key as the
# shared cache's (lot, version, window, needs): the popular questions a worker is
# asked again and again skip the round trip to Redis. As exact as the shared
# cache: a booking bumps the version (a new key), and an answer is used only
# until its valid_until, never past what Redis's TTL would allow.
_KEPT_MAX = 4096
_Answer = tuple[int, policy.Tariff | None, float]  # (free spots, tariff, valid until)
_kept: dict[tuple, _Answer] = {}
_keeping = threading.Lock()


def _cached(question: tuple, now_ts: float) -> _Answer | None:
    """A still valid answer to the question: this process's, else the shared cache's."""
    answer = _kept.get(question)
    if answer is not None and answer[-1] > now_ts:
        KEPT_HIT.inc()  # the dashboard's hit ratio counts it as the hit it is
        return answer
    answer = cache.get(_shared_key(question))
    if answer is None or answer[-1] <= now_ts:
        return None
    _keep(question, answer)
    return answer


def _shared_key(question: tuple) -> str:
    lot_pk, version, vehicle_type, start_ts, end_ts, needs = question
    key = f"avail:{lot_pk}:{version}:{vehicle_type}:{start_ts:.6f}:{end_ts:.6f}"
    return f"{key}:{needs.stored}:{needs.height_cm or ''}" if needs else key


def _keep(key: tuple, answer: _Answer) -> None:
    # One writer at a time (gunicorn's threads): iterating the dict while another
    # thread adds to it would raise. Readers need no lock.
    with _keeping:
        if _kept and len(_kept) >= _KEPT_MAX:
            del _kept[next(iter(_kept))]  # the oldest first
        _kept[key] = answer


def forget_kept_answers() -> None:
    """Tests roll back, so lot ids and versions repeat: start each one afresh."""
    with _keeping:
        _kept.clear()
    _schedule_at.cache_clear()


@lru_cache(maxsize=2048)
def _schedule_at(lot_pk: int, version: int) -> Schedule | None:
    """The lot's zone and opening hours at one version of what it offers, kept by
    each process: every change to them (the lot admin, lots.services) bumps the
    version, so a kept one is never stale, and an uncached answer for a lot whose
    offer has not changed saves the query."""
    return lot_schedule(lot_pk=lot_pk)


def _compute(
    lot_pk: int,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    now: datetime,
    needs: SpotNeeds = NO_NEEDS,
) -> tuple[int, policy.Tariff | None, float]:
    """(free spots, the tariff, until when the answer holds), in one query (and
    one more for the rate rules of a lot that has some for the type); with
    `needs`, only spots that have them count."""
    valid_until = now.timestamp() + settings.AVAILABILITY_CACHE_SECONDS
    row = hot_sql.availability(
        lot_pk=lot_pk, vehicle_type=vehicle_type, start=start, end=end, now=now, needs=needs
    )
    if row is None:  # no rate: the lot does not take this vehicle type
        return 0, None, valid_until
    hourly, daily_max, has_rules, free, first_change = row
    # A hold counted as taken lapses, and a parked car starts to hold its spot
    # for good, without a version bump: stop trusting the answer then.
    if first_change is not None:
        valid_until = min(valid_until, first_change.timestamp())
    tariff = lot_tariff(
        lot_pk=lot_pk,
        vehicle_type=vehicle_type,
        hourly=hourly,
        daily_max=daily_max,
        has_rules=has_rules,
        after=start,
    )
    return free, tariff, valid_until


def status_now(reservation: Reservation, now: datetime | None = None) -> str:
    """The status a driver should see at `now`: an unpaid hold past its deadline is
    expired by the clock, before the sweep writes it (allocation already ignores it)."""
    if (
        reservation.status == Status.PENDING_PAYMENT
        and reservation.hold_expires_at is not None
        and reservation.hold_expires_at <= (now or timezone.now())
    ):
        return Status.EXPIRED
    return reservation.status


def reservation_list_for_user(*, user, status: str | None = None) -> QuerySet[Reservation]:
    reservations = Reservation.objects.filter(user=user).select_related("lot", "spot")
    if status:
        reservations = reservations.filter(status=status)
    return reservations


def reservation_get_for_user(*, user, code: str) -> Reservation:
    """A driver's own reservation by its public code; anyone else's is 'not found'."""
    reservation = (
        Reservation.objects.select_related("lot", "spot")
        .filter(user=user, code=normalize_code(code))
        .first()
    )
    if reservation is None:
        raise NotFound("There is no such reservation.", code="reservation_not_found")
    return reservation


class PlateAmbiguous(Conflict):
    code = "plate_ambiguous"


def reservation_for_gate(
    *, lot_id: int, at: datetime, code: str = "", plate: str = "", leaving: bool = False
) -> Reservation:
    """The reservation a gate of this lot is reporting about, by code or by plate
    (a camera). Other lots' reservations are 'not found' to it.

    A plate read on the way in finds this lot's booking whose arrival window
    (EARLY_ARRIVAL before its start until its end) holds the time; on the way out,
    the car parked here. Where that is not exactly one booking, the gate is told
    so (409 plate_ambiguous, 404 reservation_not_found), never handed a guess.
    """
    reservations = Reservation.objects.select_related("lot", "spot").filter(lot_id=lot_id)
    if code:
        reservation = reservations.filter(code=normalize_code(code)).first()
        if reservation is None:
            raise NotFound(
                "There is no such reservation at this lot.", code="reservation_not_found"
            )
        return reservation
    plate = normalize_plate(plate)
    mine = reservations.filter(vehicle_plate=plate) if plate else reservations.none()
    if leaving:
        candidates = list(mine.filter(status=Status.PARKED)[:2])
        if not candidates:
            # A gate repeating a departure: the stay that ended at that moment.
            candidates = list(mine.filter(status=Status.COMPLETED, departed_at=at)[:2])
    else:
        early = timedelta(minutes=settings.EARLY_ARRIVAL_MINUTES)
        candidates = list(
            mine.filter(
                status__in=(Status.CONFIRMED, Status.PARKED), start__lte=at + early, end__gt=at
            ).order_by("start")[:3]
        )
        if len(candidates) > 1:
            # Back-to-back bookings: early for the next is on time for this one.
            started = [r for r in candidates if r.start <= at]
            candidates = started or candidates
    if not candidates:
        where = "parked at" if leaving else "due at"
        raise NotFound(
            f"No booking with the plate {plate or '(none)'} is {where} this lot at that time.",
            code="reservation_not_found",
        )
    if len(candidates) > 1:
        raise PlateAmbiguous(
            f"Several bookings at this lot have the plate {plate} at that time; "
            "scan the reservation code instead.",
        )
    return candidates[0]


# --- what a reservation's terms are (read from reservations/policy.py) ------------------


def no_show_grace(lot: Lot) -> timedelta:
    minutes = lot.no_show_grace_minutes
    return timedelta(minutes=settings.NO_SHOW_GRACE_MINUTES if minutes is None else minutes)


def booking_terms(reservation: Reservation) -> policy.Booking:
    """The reservation as the policy module sees it."""
    return policy.Booking(
        start=reservation.start,
        end=reservation.end,
        # The rate and rules in force when the booking was made, never today's.
        tariff=policy.Tariff.from_snapshot(
            reservation.hourly_amount, reservation.daily_max_amount, reservation.tariff_rules
        ),
        grace=no_show_grace(reservation.lot),
    )


@dataclass(frozen=True)
class Terms:
    """What a driver commits to, stated before they do."""

    currency: str
    price: int
    breakdown: tuple[PriceLine, ...]  # the price line by line; sums to `price`
    no_show_charge: int
    no_show_after: datetime  # no arrival by then: the no-show charge
    grace_minutes: int
    early_entry_from: datetime
    early_entry_minutes: int
    free_cancellation_until: datetime
    late_cancel_policy: str
    cancellation_charge_now: int | None  # None: it cannot be cancelled now
    overstay_hourly: int
    overstay_daily_max: int
    charged_at_once: bool  # paying now charges the card instead of holding the amount
    lot_timezone: str  # the IANA zone the driver's times are read in
    # Flex rates the booking is priced at (names), besides the base rate: they
    # price an overstay or an extension in their hours too.
    rate_rules: tuple[str, ...] = ()

    @property
    def started(self) -> bool:
        """Cancelling already costs something (the window has begun)."""
        return bool(self.cancellation_charge_now)


def _terms(
    booking: policy.Booking,
    *,
    lot: Lot,
    currency: str,
    now: datetime,
    cancellable: bool,
    paid: bool,
) -> Terms:
    early = timedelta(minutes=settings.EARLY_ARRIVAL_MINUTES)
    return Terms(
        currency=currency,
        price=booking.price,
        breakdown=booking.breakdown,
        no_show_charge=policy.no_show_charge(booking),
        no_show_after=booking.no_show_after,
        grace_minutes=int(booking.grace.total_seconds() // 60),
        early_entry_from=booking.start - early,
        early_entry_minutes=settings.EARLY_ARRIVAL_MINUTES,
        free_cancellation_until=policy.free_cancellation_until(
            booking, late_policy=settings.LATE_CANCEL_POLICY
        ),
        late_cancel_policy=settings.LATE_CANCEL_POLICY,
        cancellation_charge_now=policy.cancellation_charge(
            booking, now, paid=paid, late_policy=settings.LATE_CANCEL_POLICY
        )
        if cancellable
        else None,
        overstay_hourly=booking.tariff.hourly,
        overstay_daily_max=booking.tariff.daily_max,
        charged_at_once=policy.charged_at_once(
            booking, now, card_hold_max=timedelta(days=settings.CARD_HOLD_MAX_DAYS)
        ),
        lot_timezone=lot.timezone,
        rate_rules=tuple(dict.fromkeys(rule.name for rule in booking.tariff.rules)),
    )


def reservation_terms(reservation: Reservation, *, now: datetime | None = None) -> Terms:
    """The reservation's terms, from the policy module; `now` decides what
    cancelling would cost at this moment."""
    return _terms(
        booking_terms(reservation),
        lot=reservation.lot,
        currency=reservation.currency,
        now=now or timezone.now(),
        cancellable=reservation.status in (Status.PENDING_PAYMENT, Status.CONFIRMED),
        paid=reservation.status == Status.CONFIRMED,
    )


def reservation_terms_once_paid(reservation: Reservation, *, now: datetime | None = None) -> Terms:
    """The terms the driver agrees to by paying now: what cancelling would cost
    straight after paying (not nothing, once the window has started)."""
    return _terms(
        booking_terms(reservation),
        lot=reservation.lot,
        currency=reservation.currency,
        now=now or timezone.now(),
        cancellable=True,
        paid=True,
    )


def window_terms(
    *,
    lot: Lot,
    start: datetime,
    end: datetime,
    tariff: policy.Tariff,
    now: datetime | None = None,
) -> Terms:
    """The terms of booking and paying for this window now, before there is a
    reservation (the lot page's quote), at the lot's tariff as it stands."""
    booking = policy.Booking(
        start=start,
        end=end,
        tariff=tariff,
        grace=no_show_grace(lot),
    )
    return _terms(
        booking,
        lot=lot,
        currency=lot.currency,
        now=now or timezone.now(),
        cancellable=True,
        paid=True,
    )


@dataclass(frozen=True)
class ExtensionQuote:
    """What extending a booking to `new_end` would cost, read before asking
    (the extension itself checks everything again, under locks)."""

    new_end: datetime
    amount: int
    new_total: int
    currency: str
    charged_at_once: bool
    spot_free: bool
    free_until: datetime | None  # when someone else's booking of the spot starts


def reservation_extension_quote(
    reservation: Reservation, *, new_end: datetime, now: datetime | None = None
) -> ExtensionQuote:
    now = now or timezone.now()
    booking = booking_terms(reservation)
    longer = policy.extended(booking, new_end)
    following = hot_sql.next_blocking_start(
        spot_pk=reservation.spot_id, after=reservation.end, other_than=reservation.pk, now=now
    )
    return ExtensionQuote(
        new_end=new_end,
        amount=policy.extension_charge(booking, new_end),
        new_total=longer.price,
        currency=reservation.currency,
        charged_at_once=policy.charged_at_once(
            longer, now, card_hold_max=timedelta(days=settings.CARD_HOLD_MAX_DAYS)
        ),
        spot_free=following is None or following >= new_end,
        free_until=following,
    )


def reservation_extension_applied(reservation: Reservation, *, key: str) -> bool:
    """Whether the request with this Idempotency-Key extended the reservation."""
    return reservation.extensions.filter(
        idempotency_key=key, state=ReservationExtension.State.APPLIED
    ).exists()


# --- the booking website's reads ----------------------------------------------------------


class AmbiguousLocalTime(InvalidInput):
    """A wall-clock time the clocks pass twice (they go back): which one is meant?"""

    code = "ambiguous_local_time"

    def __init__(self, value: datetime, tz: zoneinfo.ZoneInfo, field: str | None = None):
        first, second = (value.replace(tzinfo=tz, fold=fold) for fold in (0, 1))
        self.choices = local_time_folds(value, tz)
        super().__init__(
            f"{value:%H:%M} happens twice on {value.day} {value:%B} in {tz.key}: the clocks "
            f"go back that night. Say which: {value:%H:%M} {first.tzname()} (the first) or "
            f"{value:%H:%M} {second.tzname()} (an hour later).",
            code=self.code,
            field=field,
        )


def local_time_folds(value: datetime, tz: zoneinfo.ZoneInfo) -> tuple[tuple[int, str], ...]:
    """For a wall-clock time the clocks pass twice, its two readings as (fold, zone
    abbreviation): ((0, "CEST"), (1, "CET")); for any other time, ()."""
    if value.tzinfo is not None:
        return ()
    first, second = (value.replace(tzinfo=tz, fold=fold) for fold in (0, 1))
    if first.utcoffset() == second.utcoffset():
        return ()
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != value:
        return ()  # skipped (spring forward), not repeated
    return ((0, first.tzname() or ""), (1, second.tzname() or ""))


def local_to_utc(value: datetime, tz: zoneinfo.ZoneInfo, *, fold: int | None = None) -> datetime:
    """A wall-clock time at a lot (naive, in the lot's zone) as an aware UTC datetime.

    DST-safe: a time the clocks skip (spring forward) is refused rather than
    silently moved; a time they pass twice (fall back) is refused too
    (AmbiguousLocalTime) unless `fold` says which (0: the first, 1: the second).
    An aware value is only converted.
    """
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value.astimezone(UTC)
    aware = value.replace(tzinfo=tz, fold=fold or 0)
    if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != value:
        raise InvalidInput(
            f"{value:%H:%M} does not exist on {value.day} {value:%B} in {tz.key}: "
            "the clocks go forward then. Pick a time outside that hour.",
            code="nonexistent_local_time",
        )
    if fold is None and local_time_folds(value, tz):
        raise AmbiguousLocalTime(value, tz)
    return aware.astimezone(UTC)


@dataclass(frozen=True)
class LotOffer:
    """What one lot offers for a window searched in local time."""

    lot: Lot
    vehicle_type: str
    start: datetime | None  # the window in UTC; None when it cannot be booked here
    end: datetime | None
    free_spots: int
    price_amount: int | None
    problem: str = ""  # why this window cannot be booked at this lot, for people
    problem_code: str = ""  # the same, for code (start_in_past, start_too_far_ahead...)
    distance_m: int | None = None  # from the place searched near, if any

    @property
    def currency(self) -> str:
        return self.lot.currency

    @property
    def is_free(self) -> bool:
        return not self.problem and self.free_spots > 0 and self.price_amount is not None


def lot_cities() -> list[tuple[str, str]]:
    """(city, time zone) of the active lots, by city: one query."""
    rows = (
        Lot.objects.filter(is_active=True)
        .values_list("city", "timezone")
        .distinct()
        .order_by("city", "timezone")
    )
    seen: dict[str, str] = {}
    for city, tz in rows:
        seen.setdefault(city, tz)
    return list(seen.items())


def lot_search(
    *,
    vehicle_type: str,
    local_start: datetime,
    local_end: datetime,
    city: str | None = None,
    q: str | None = None,
    near: tuple[float, float] | None = None,
    radius_m: int | None = None,
    now: datetime | None = None,
    needs: SpotNeeds = NO_NEEDS,
) -> list[LotOffer]:
    """The active lots (of a city, or all; matching the words `q`; within
    `radius_m` of `near`, nearest first) that take this vehicle type (in spots
    with what `needs` asks), each with its free spots (of those) and price for
    the window given in its own local time.

    Three queries whatever the number of lots: the lots with their rate, their
    opening hours, then the free spots of all of them counted together (one
    window per time zone); a fourth for the rate rules when a lot shown has some.
    """
    now = now or timezone.now()
    rate = Rate.objects.filter(lot=OuterRef("pk"), vehicle_type=vehicle_type)
    lots = Lot.objects.filter(is_active=True).filter(
        Exists(
            Spot.objects.filter(
                spots_with_q(needs), lot=OuterRef("pk"), vehicle_type=vehicle_type, is_active=True
            )
        )
    )
    if city:
        lots = lots.filter(city__iexact=city.strip())
    if q:
        lots = lots_matching(lots, q)
    lots = (
        lots.annotate(
            hourly=Subquery(rate.values("hourly_amount")[:1]),
            daily_max=Subquery(rate.values("daily_max_amount")[:1]),
            has_rules=Exists(
                RateRule.objects.filter(
                    lot=OuterRef("pk"), is_active=True, vehicle_type__in=["", vehicle_type]
                )
            ),
        )
        .filter(hourly__isnull=False)
        .order_by("city", "name")
        .prefetch_related(Prefetch("opening_hours", queryset=OpeningHours.objects.all()))
    )
    if near is not None:
        lots = lots_near(lots, *near, radius_m=radius_m or NEAR_DEFAULT_RADIUS_M)

    windows: dict[int, tuple[datetime, datetime]] = {}
    problems: dict[int, tuple[str, str]] = {}
    lots = list(lots)
    for lot in lots:
        try:
            start = local_to_utc(local_start, lot.tz)
            end = local_to_utc(local_end, lot.tz)
            validate_window(start=start, end=end, now=now)
        except InvalidInput as exc:
            problems[lot.pk] = (_search_problem(exc, lot), exc.code)
            continue
        try:
            schedule = Schedule(lot.name, lot.tz, opening_hours_of(lot))
            check_opening_hours(schedule=schedule, start=start, end=end)
        except OutsideOpeningHours:
            problems[lot.pk] = (gettext("Closed for part of these times"), OutsideOpeningHours.code)
            continue
        windows[lot.pk] = (start, end)

    free: dict[int, int] = {}
    if windows:
        by_window: dict[tuple[datetime, datetime], list[int]] = {}
        for lot_pk, window in windows.items():
            by_window.setdefault(window, []).append(lot_pk)
        overlaps = Q()
        for (start, end), lot_pks in by_window.items():
            overlaps |= Q(lot_id__in=lot_pks) & overlapping_q(start, end, now)
        taken = Reservation.objects.filter(spot=OuterRef("pk")).filter(
            live_blocking_q(now), overlaps
        )
        free = dict(
            Spot.objects.filter(lot_id__in=list(windows), vehicle_type=vehicle_type, is_active=True)
            .filter(~Exists(taken), spots_with_q(needs))
            .values("lot_id")
            .annotate(n=Count("pk"))
            .values_list("lot_id", "n")
        )

    # Flex rates: one more query, only when a lot shown has rate rules for the type.
    rules = flex_rules_of_lots(
        lot_pks=[lot.pk for lot in lots if lot.has_rules and lot.pk in windows],
        vehicle_type=vehicle_type,
    )
    offers = []
    for lot in lots:
        window = windows.get(lot.pk)
        price = None
        if window:
            tariff = Tariff(lot.hourly, lot.daily_max, lot.timezone, rules.get(lot.pk, ()))
            price = tariff.window_price(*window)
        offers.append(
            LotOffer(
                lot=lot,
                vehicle_type=vehicle_type,
                start=window[0] if window else None,
                end=window[1] if window else None,
                free_spots=free.get(lot.pk, 0),
                price_amount=price,
                problem=problems.get(lot.pk, ("", ""))[0],
                problem_code=problems.get(lot.pk, ("", ""))[1],
                distance_m=_whole(getattr(lot, "distance_m", None)),
            )
        )
    return offers


def _whole(metres: float | None) -> int | None:
    return None if metres is None else int(metres)


def _search_problem(exc: InvalidInput, lot: Lot) -> str:
    # In the active language: the website's search is its only reader.
    if exc.code == "start_in_past":
        return gettext("These times have already passed in %(city)s.") % {"city": lot.city}
    if exc.code == "nonexistent_local_time":
        return gettext(
            "That time does not exist in %(city)s on that day (the clocks go forward)."
        ) % {"city": lot.city}
    if exc.code == AmbiguousLocalTime.code:
        return gettext(
            "That time happens twice in %(city)s that night (the clocks go back): "
            "choose it on the car park's page, which asks which one you mean."
        ) % {"city": lot.city}
    return exc.detail


@dataclass(frozen=True)
class ReservationRow:
    """A driver's reservation with its payment (None before any was prepared):
    the booking's, or with extensions, all of them added up (PaymentTotals)."""

    reservation: Reservation
    payment: Payment | PaymentTotals | None


@dataclass(frozen=True)
class PaymentTotals:
    """A reservation's booking and extension payments, added up as a driver sees
    them: what is on hold now, charged, refunded."""

    status: str  # authorised while anything is on hold, else captured if anything was
    amount_authorised: int
    amount_captured: int
    amount_refunded: int
    currency: str
    capture_mode: str  # the booking's

    @property
    def amount_net(self) -> int:
        return self.amount_captured - self.amount_refunded

    @classmethod
    def of(cls, payments: list[Payment]) -> PaymentTotals:
        statuses = {p.status for p in payments}
        held = [p for p in payments if p.status == Payment.Status.AUTHORISED]
        if held:
            status = Payment.Status.AUTHORISED
        elif Payment.Status.CAPTURED in statuses:
            status = Payment.Status.CAPTURED
        else:
            status = payments[0].status
        return cls(
            status=status,
            amount_authorised=sum(p.amount_authorised for p in (held or payments)),
            amount_captured=sum(p.amount_captured for p in payments),
            amount_refunded=sum(p.amount_refunded for p in payments),
            currency=payments[0].currency,
            capture_mode=payments[0].capture_mode,
        )


def payments_by_reservation(reservations: list[Reservation]) -> dict[int, Payment | PaymentTotals]:
    """Each reservation's payment, with its extensions' added when it has any:
    one query, and one more when some reservation was extended."""
    booking = payments_for(references=[payment_reference(r) for r in reservations])
    found = {
        r.pk: booking[payment_reference(r)] for r in reservations if payment_reference(r) in booking
    }
    by_pk = {r.pk: r for r in reservations}
    numbers = ReservationExtension.objects.filter(
        reservation_id__in=list(found), state=ReservationExtension.State.APPLIED
    ).values_list("reservation_id", "number")
    references = {extension_payment_reference(by_pk[pk], number): pk for pk, number in numbers}
    if not references:
        return found
    extra: dict[int, list[Payment]] = {}
    for payment in Payment.objects.filter(
        kind=Payment.Kind.EXTENSION, reference__in=list(references)
    ).order_by("pk"):
        extra.setdefault(references[payment.reference], []).append(payment)
    for pk, payments in extra.items():
        found[pk] = PaymentTotals.of([found[pk], *payments])
    return found


@dataclass(frozen=True)
class ReservationOverview:
    upcoming: list[ReservationRow]  # still to use or in use, soonest first
    past: list[ReservationRow]  # finished, cancelled or lapsed, latest first
    past_total: int


def reservation_overview_for_user(
    *, user, now: datetime | None = None, past_limit: int = 50
) -> ReservationOverview:
    """A driver's reservations, upcoming and past, with their payments: three queries.

    Upcoming: parked now, or confirmed or awaiting payment (hold still running)
    and not over yet. Everything else is past; only the latest `past_limit` are
    listed, with how many there are in all.
    """
    now = now or timezone.now()
    mine = Reservation.objects.filter(user=user).select_related("lot", "spot")
    live = (
        Q(status=Status.PARKED)
        | Q(status=Status.CONFIRMED, end__gt=now)
        | Q(status=Status.PENDING_PAYMENT, end__gt=now, hold_expires_at__gt=now)
    )
    upcoming = list(mine.filter(live).order_by("start", "id"))
    past_qs = mine.exclude(live).order_by("-start", "-id")
    past = list(past_qs[: past_limit + 1])
    past_total = len(past) if len(past) <= past_limit else past_qs.count()
    past = past[:past_limit]
    payments = payments_by_reservation([*upcoming, *past])
    return ReservationOverview(
        upcoming=[ReservationRow(r, payments.get(r.pk)) for r in upcoming],
        past=[ReservationRow(r, payments.get(r.pk)) for r in past],
        past_total=past_total,
    )


def reservation_row_for_user(*, user, code: str) -> ReservationRow:
    """One of a driver's reservations by its code, with its payment (anyone
    else's is 'not found')."""
    reservation = reservation_get_for_user(user=user, code=code)
    return ReservationRow(reservation, payments_by_reservation([reservation]).get(reservation.pk))


# --- receipts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptLine:
    """One movement of money on a receipt: a charge (positive) or a refund (negative)."""

    kind: str  # parking, extension, overstay, no_show, cancellation, refund
    label: str
    amount: int


@dataclass(frozen=True)
class Receipt:
    reservation: Reservation
    lines: list[ReceiptLine]
    currency: str
    settled_at: datetime

    @property
    def charged(self) -> int:
        return sum(line.amount for line in self.lines if line.amount > 0)

    @property
    def refunded(self) -> int:
        return -sum(line.amount for line in self.lines if line.amount < 0)

    @property
    def total(self) -> int:
        return self.charged - self.refunded


# What the booking's own payment paid for, by how the reservation ended.
_PARKING = gettext_lazy("Parking")
# Labels in the active language (the API's is English; an e-mail's, the driver's).
_BOOKING_CHARGE = {
    Status.NO_SHOW: ("no_show", gettext_lazy("No-show charge (first 24 hours)")),
    Status.CANCELLED: ("cancellation", gettext_lazy("Late cancellation")),
}


def reservation_receipt(reservation: Reservation) -> Receipt | None:
    """What a settled reservation cost, from the amounts its payments recorded
    (captured, refunded), never recomputed: one line per charge and per refund.
    None until the reservation is settled. Three queries."""
    if reservation.settlement != Settlement.SETTLED or reservation.settled_at is None:
        return None
    reference = payment_reference(reservation)
    extensions = {
        extension_payment_reference(reservation, e.number): e
        for e in reservation.extensions.all().order_by("number")
    }
    payments = Payment.objects.filter(reference__in=[reference, *extensions]).order_by("pk")
    kinds = {Payment.Kind.BOOKING: 0, Payment.Kind.EXTENSION: 1, Payment.Kind.OVERSTAY: 2}
    lines: list[ReceiptLine] = []
    for payment in sorted(payments, key=lambda p: (kinds.get(p.kind, 9), p.reference)):
        if payment.kind == Payment.Kind.EXTENSION:
            extension = extensions.get(payment.reference)
            kind = "extension"
            label = (
                gettext("Extension %(number)s") % {"number": extension.number}
                if extension
                else gettext("Extension")
            )
        elif payment.kind == Payment.Kind.OVERSTAY:
            kind, label = "overstay", gettext("Overstay")
        elif payment.capture_mode == Payment.CaptureMode.IMMEDIATE:
            # Charged in full when booked; what was not owed is a refund below.
            kind, label = "parking", gettext("Parking (charged when booked)")
        else:
            kind, label = _BOOKING_CHARGE.get(reservation.status, ("parking", _PARKING))
            label = str(label)
        if payment.amount_captured:
            lines.append(ReceiptLine(kind=kind, label=label, amount=payment.amount_captured))
        if payment.amount_refunded:
            lines.append(
                ReceiptLine(
                    kind="refund",
                    label=gettext("Refund: %(what)s") % {"what": label.lower()},
                    amount=-payment.amount_refunded,
                )
            )
    return Receipt(
        reservation=reservation,
        lines=lines,
        currency=reservation.currency,
        settled_at=reservation.settled_at,
    )


def receipt_for_user(*, user, code: str) -> Receipt:
    """A driver's receipt for one of their reservations (anyone else's, or one
    not settled yet, is 'not found')."""
    reservation = reservation_get_for_user(user=user, code=code)
    receipt = reservation_receipt(reservation)
    if receipt is None:
        raise NotFound("This reservation has no receipt yet.", code="receipt_not_ready")
    return receipt


def lot_closures_ahead(*, lot: Lot, now: datetime | None = None, limit: int = 3) -> list[Closure]:
    """The lot's closures in force that are not over yet, soonest first, for
    drivers to see on the lot's page (on the closure_lot_in_force index)."""
    now = now or timezone.now()
    return list(
        Closure.objects.filter(lot=lot, lifted_at__isnull=True, ends_at__gt=now)
        .prefetch_related("spots")
        .order_by("starts_at", "pk")[:limit]
    )
