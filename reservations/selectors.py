"""Reads about reservations: availability (checkCapacity) and a driver's bookings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db.models import Min, QuerySet
from django.utils import timezone

from config.errors import NotFound
from lots.models import Rate
from lots.pricing import window_price
from lots.selectors import active_lots
from reservations.allocation import free_spots, overlapping_q
from reservations.models import Reservation, Status, normalize_code
from reservations.rules import validate_window


@dataclass(frozen=True)
class Availability:
    lot_id: str
    vehicle_type: str
    start: datetime
    end: datetime
    free_spots: int
    price_amount: int | None  # None: the lot has no rate for this vehicle type
    currency: str

    @property
    def is_free(self) -> bool:
        return self.free_spots > 0


def lot_availability(
    *, lot_id: str, vehicle_type: str, start: datetime, end: datetime, now: datetime | None = None
) -> Availability:
    """Whether one spot is free for the whole window, how many are, and the price.

    Exact: the cache key carries the lot's availability version, which every
    booking bumps in its own transaction, and an answer lives no longer than the
    first hold it counted that may lapse.
    """
    now = now or timezone.now()
    validate_window(start=start, end=end, now=now)
    lot = active_lots(lot_id=lot_id).values("pk", "availability_version", "currency").first()
    if lot is None:
        raise NotFound("There is no such lot.", code="lot_not_found")

    key = (
        f"avail:{lot['pk']}:{lot['availability_version']}:{vehicle_type}:"
        f"{start.timestamp():.6f}:{end.timestamp():.6f}"
    )
    cached = cache.get(key)
    if cached is not None and cached[2] > now.timestamp():
        free, price, _ = cached
    else:
        free, price, valid_until = _compute(lot["pk"], vehicle_type, start, end, now)
        ttl = min(settings.AVAILABILITY_CACHE_SECONDS, valid_until - now.timestamp())
        if ttl >= 1:
            cache.set(key, (free, price, valid_until), timeout=ttl)
    return Availability(
        lot_id=lot_id,
        vehicle_type=vehicle_type,
        start=start,
        end=end,
        free_spots=free,
        price_amount=price,
        currency=lot["currency"],
    )


def _compute(
    lot_pk: int, vehicle_type: str, start: datetime, end: datetime, now: datetime
) -> tuple[int, int | None, float]:
    rate = Rate.objects.filter(lot_id=lot_pk, vehicle_type=vehicle_type).first()
    if rate is None:
        return 0, None, now.timestamp() + settings.AVAILABILITY_CACHE_SECONDS
    price = window_price(start, end, hourly=rate.hourly_amount, daily_max=rate.daily_max_amount)
    free = free_spots(
        lot_id=lot_pk, vehicle_type=vehicle_type, start=start, end=end, now=now
    ).count()
    # A hold counted as taken will lapse without a version bump; stop trusting
    # the answer at the earliest such moment.
    first_lapse = (
        Reservation.objects.filter(
            lot_id=lot_pk,
            vehicle_type=vehicle_type,
            status=Status.PENDING_PAYMENT,
            hold_expires_at__gt=now,
        )
        .filter(overlapping_q(start, end))
        .aggregate(at=Min("hold_expires_at"))["at"]
    )
    valid_until = now.timestamp() + settings.AVAILABILITY_CACHE_SECONDS
    if first_lapse is not None:
        valid_until = min(valid_until, first_lapse.timestamp())
    return free, price, valid_until


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
