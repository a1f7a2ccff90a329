"""Demo history for `seed_demo`: a realistic past week and coming week of bookings.

Written in bulk (a few thousand rows in a second or two), with what the state
machine and the payment services would have written: each reservation's final
status with its times and amounts, its last event, and its Payment rows with
the amounts and ids Stripe would have given (`pi_demo_…`: no call to Stripe,
which is not running when `make run` seeds; payments/gateway.py settles such
intents as bookkeeping when their time comes). Finished bookings are settled;
bookings still to come hold an authorisation. A few are left for staff to
follow up: a settlement that failed, cars still in after their end, a booking
cancelled because an overstaying car kept its spot.

Idempotent: a lot that already has demo bookings gets none.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from lots.constants import VehicleType
from lots.models import Lot, Spot
from lots.pricing import no_show_charge, window_price
from lots.services import lot_availability_changed
from parking.models import User
from payments.gateway import DEMO_INTENT_PREFIX
from payments.models import Payment
from reservations.models import (
    Actor,
    Reservation,
    ReservationEvent,
    Settlement,
    Status,
    new_reservation_code,
    payment_reference,
)
from reservations.services.status import DISPLACED

DEMO_DRIVER_DOMAIN = "drivers.parkspot.test"
DEMO_DRIVER_NAMES = (
    "Ana Souza",
    "Ben Okafor",
    "Chloé Martin",
    "Daichi Sato",
    "Emma Fischer",
    "Farid Haddad",
    "Grace Kim",
    "Hugo Laurent",
    "Isla Murphy",
    "Jonas Berg",
    "Keiko Tanaka",
    "Luis García",
)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
# The share of each type's spots that get demo bookings: the rest are left
# free (room for a visitor's own bookings), and the seed stays quick.
_BOOKED_SHARE = 0.4


def demo_drivers_ensure() -> list[User]:
    """Drivers the demo bookings belong to (no password: nobody logs in as them)."""
    drivers = []
    for name in DEMO_DRIVER_NAMES:
        email = f"{name.split()[0].lower().replace('é', 'e')}@{DEMO_DRIVER_DOMAIN}"
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email=email, password=None, full_name=name)
        drivers.append(user)
    return drivers


@dataclass
class _Batch:
    reservations: list[Reservation] = field(default_factory=list)
    events: list[tuple[Reservation, str, str, datetime, dict]] = field(default_factory=list)
    payments: list[tuple[Reservation, dict]] = field(default_factory=list)


def demo_bookings_ensure(
    *, lot: Lot, drivers: list[User], now: datetime, seed: int | None = None
) -> int:
    """A past week and a coming week of bookings at the lot, in every state.
    Returns how many were made (0 when the lot has them already)."""
    if Reservation.objects.filter(lot=lot, user__email__endswith=f"@{DEMO_DRIVER_DOMAIN}").exists():
        return 0
    rng = random.Random(seed if seed is not None else _stable_seed(lot.slug))  # noqa: S311  (demo data, not secrets)
    rates = {rate.vehicle_type: rate for rate in lot.rates.all()}
    spots = list(lot.spots.filter(is_active=True).order_by("vehicle_type", "label"))
    batch = _Batch()
    tz = lot.tz
    horizon_start = now - timedelta(days=7)
    horizon_end = now + timedelta(days=7)
    by_type: dict[str, list[Spot]] = {}
    for spot in spots:
        by_type.setdefault(spot.vehicle_type, []).append(spot)
    used = [s for group in by_type.values() for s in group[: round(len(group) * _BOOKED_SHARE)]]
    # Where each spot's ordinary bookings start: the first car spots first
    # carry what staff must follow up, whatever the time of day the seed runs.
    begin = {spot.pk: horizon_start + timedelta(minutes=rng.randrange(0, 240, 15)) for spot in used}
    cars = [s for s in used if s.vehicle_type == VehicleType.CAR and VehicleType.CAR in rates]
    quarter = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    specials = [
        # Two cars still in after their end (overstayers).
        ("still_in", quarter - 3 * HOUR, quarter - 40 * MINUTE, now + 2 * HOUR),
        ("still_in", quarter - 4 * HOUR, quarter - 90 * MINUTE, now + 2 * HOUR),
        # A settlement that failed two days ago.
        ("attention", quarter - 50 * HOUR, quarter - 47 * HOUR, now + 30 * MINUTE),
        # A booking cancelled because an overstaying car kept its spot.
        ("displaced", quarter + 30 * MINUTE, quarter + 150 * MINUTE, now + 3 * HOUR),
    ]
    for spot, (special, start, end, then) in zip(cars, specials, strict=False):
        _book(
            batch, lot=lot, spot=spot, rate=rates[VehicleType.CAR], driver=rng.choice(drivers),
            start=start, end=end, now=now, rng=rng, special=special,
        )  # fmt: skip
        begin[spot.pk] = then

    for spot in used:
        rate = rates.get(spot.vehicle_type)
        if rate is None:
            continue
        cursor = begin[spot.pk]
        while cursor < horizon_end:
            local = cursor.astimezone(tz)
            # Days run 07:00–21:00 local (Tokyo closes at midnight); a spot
            # stays free for a while between bookings.
            if local.hour >= 19 or local.hour < 7:
                next_day = (local + timedelta(days=1 if local.hour >= 19 else 0)).replace(
                    hour=7, minute=0, second=0, microsecond=0
                )
                cursor = next_day + timedelta(minutes=rng.randrange(0, 180, 15))
                continue
            start = cursor
            # Out by 22:00 local (Tokyo closes at midnight).
            hours = min(rng.choice((1, 1, 2, 2, 2, 3, 3, 4, 5, 8)), max(1, 21 - local.hour))
            end = start + timedelta(hours=hours)
            held_until = _book(
                batch, lot=lot, spot=spot, rate=rate, driver=rng.choice(drivers), start=start,
                end=end, now=now, rng=rng, special=None,
            )  # fmt: skip
            cursor = held_until + timedelta(minutes=rng.randrange(30, 300, 15))

    booked_at = [r.created_at for r in batch.reservations]
    with transaction.atomic():
        Reservation.objects.bulk_create(batch.reservations, batch_size=500)
        # created_at is set on insert (auto_now_add): put back when each was booked.
        for r, at in zip(batch.reservations, booked_at, strict=True):
            r.created_at = at
        Reservation.objects.bulk_update(batch.reservations, ["created_at"], batch_size=500)
        ReservationEvent.objects.bulk_create(
            [
                ReservationEvent(
                    reservation=r, from_status=before, to_status=r.status, actor=actor, at=at,
                    data=data,
                )
                for r, before, actor, at, data in batch.events
            ],
            batch_size=500,
        )  # fmt: skip
        Payment.objects.bulk_create(
            [Payment(reference=payment_reference(r), user=r.user, currency=r.currency, **fields)
             for r, fields in batch.payments],
            batch_size=500,
        )  # fmt: skip
        # Booked times were written without the booking path: cached answers end.
        lot_availability_changed(lot_id=lot.pk)
    return len(batch.reservations)


def _stable_seed(slug: str) -> int:
    return int.from_bytes(hashlib.sha256(slug.encode()).digest()[:4], "big")


def _intent(code: str, kind: str) -> str:
    return DEMO_INTENT_PREFIX + hashlib.sha256(f"{code}:{kind}".encode()).hexdigest()[:20]


def _book(
    batch: _Batch,
    *,
    lot: Lot,
    spot: Spot,
    rate,
    driver: User,
    start: datetime,
    end: datetime,
    now: datetime,
    rng: random.Random,
    special: str | None,
) -> datetime:
    """One booking and its payments; returns until when it holds its spot."""
    price = window_price(start, end, hourly=rate.hourly_amount, daily_max=rate.daily_max_amount)
    no_show = no_show_charge(start, end, hourly=rate.hourly_amount, daily_max=rate.daily_max_amount)
    lead = timedelta(hours=rng.choice((1, 2, 4, 8, 20, 26, 48, 72, 120)), minutes=rng.randrange(60))
    r = Reservation(
        code=new_reservation_code(),
        user=driver,
        lot=lot,
        spot=spot,
        vehicle_type=spot.vehicle_type,
        vehicle_plate=_plate(lot, len(batch.reservations), rng),
        start=start,
        end=end,
        occupied_until=end,
        status=Status.CONFIRMED,
        price_amount=price,
        no_show_amount=no_show,
        hourly_amount=rate.hourly_amount,
        daily_max_amount=rate.daily_max_amount,
        currency=lot.currency,
        created_at=min(start - lead, now - 5 * MINUTE),
    )
    grace = timedelta(minutes=lot.no_show_grace_minutes or settings.NO_SHOW_GRACE_MINUTES)
    booking = {
        "kind": Payment.Kind.BOOKING,
        "amount": price,
        "amount_authorised": price,
        "status": Payment.Status.AUTHORISED,
        "payment_intent_id": _intent(r.code, "booking"),
        "payment_method_id": "pm_card_visa",
    }
    roll = 1.0 if special else rng.random()  # a special case takes its own path
    if special == "displaced":
        # An overstaying car kept its spot and no other was free: refunded in full.
        r.status, r.amount_due = Status.CANCELLED, 0
        r.settlement, r.settled_at = Settlement.SETTLED, now - 10 * MINUTE
        booking["status"] = Payment.Status.CANCELED
        batch.events.append((r, Status.CONFIRMED, Actor.SYSTEM, now - 10 * MINUTE,
                             {"reason": DISPLACED, "overstayer": "demo"}))  # fmt: skip
        _add(batch, r, booking)
        return start  # holds nothing
    if end <= now or special == "still_in":
        arrived = start + timedelta(minutes=rng.randrange(-10, 25))
        if special == "still_in":
            # Came and has not left though its time is up: an overstayer.
            r.status, r.arrived_at = Status.PARKED, arrived
            batch.events.append((r, Status.CONFIRMED, Actor.GATE, arrived, {}))
            _add(batch, r, booking)
            return end
        if roll < 0.08:  # never came
            r.status = Status.NO_SHOW
            r.occupied_until = min(start + grace, end)
            r.amount_due = no_show
            _settle(r, booking, no_show, now=r.occupied_until)
            batch.events.append((r, Status.CONFIRMED, Actor.SCHEDULER, r.occupied_until, {}))
            _add(batch, r, booking)
            return r.occupied_until
        if roll < 0.18:  # cancelled in good time: nothing charged
            r.status, r.amount_due = Status.CANCELLED, 0
            cancelled_at = start - timedelta(hours=rng.choice((1, 3, 12)))
            r.settlement, r.settled_at = Settlement.SETTLED, cancelled_at
            booking["status"] = Payment.Status.CANCELED
            batch.events.append((r, Status.CONFIRMED, Actor.DRIVER, cancelled_at, {}))
            _add(batch, r, booking)
            return start
        if roll < 0.21:  # never paid: the hold lapsed
            r.status = Status.EXPIRED
            r.hold_expires_at = r.created_at + timedelta(minutes=15)
            r.occupied_until = start
            batch.events.append((r, Status.PENDING_PAYMENT, Actor.SCHEDULER, r.hold_expires_at, {}))
            batch.reservations.append(r)
            return start
        if roll < 0.31:  # left early
            departed = end - timedelta(minutes=rng.randrange(20, 90, 5))
            departed = max(departed, arrived + 15 * MINUTE)
        elif roll < 0.39:  # overstayed
            departed = end + timedelta(minutes=rng.randrange(15, 120, 5))
        else:
            departed = end - timedelta(minutes=rng.randrange(0, 15))
        departed = max(departed, arrived + 15 * MINUTE)
        r.status, r.arrived_at, r.departed_at = Status.COMPLETED, arrived, departed
        r.occupied_until = departed  # after the start: arrived at most 10 min early, in 15+
        r.amount_due = price
        r.overstay_amount = (
            window_price(end, departed, hourly=rate.hourly_amount, daily_max=rate.daily_max_amount)
            if departed > end
            else 0
        )
        _settle(r, booking, price, now=departed)
        if special == "attention":
            # The capture was refused for good: staff follow it up.
            booking["status"] = Payment.Status.AUTHORISED
            booking["amount_captured"] = 0
            booking["last_error_code"] = "card_declined"
            booking["last_error_message"] = "Your card was declined."
            r.settlement, r.settled_at = Settlement.ATTENTION, None
            r.settlement_attempts = 5
            r.settlement_error = "booking: card_declined (Your card was declined.)"
        batch.events.append((r, Status.PARKED, Actor.GATE, departed, {}))
        _add(batch, r, booking)
        if r.overstay_amount:
            batch.payments.append(
                (r, {
                    "kind": Payment.Kind.OVERSTAY,
                    "amount": r.overstay_amount,
                    "amount_authorised": r.overstay_amount,
                    "amount_captured": r.overstay_amount,
                    "status": Payment.Status.CAPTURED,
                    "capture_mode": Payment.CaptureMode.IMMEDIATE,
                    "payment_intent_id": _intent(r.code, "overstay"),
                    "payment_method_id": "pm_card_visa",
                })
            )  # fmt: skip
        return r.occupied_until
    if start <= now:  # under way
        if now >= start + grace and roll < 0.1:
            r.status = Status.NO_SHOW
            r.occupied_until = start + grace
            r.amount_due = no_show
            _settle(r, booking, no_show, now=r.occupied_until)
            batch.events.append((r, Status.CONFIRMED, Actor.SCHEDULER, r.occupied_until, {}))
            _add(batch, r, booking)
            return r.occupied_until
        arrived = start + timedelta(minutes=rng.randrange(-10, 20))
        if arrived <= now:
            r.status, r.arrived_at = Status.PARKED, arrived
            batch.events.append((r, Status.CONFIRMED, Actor.GATE, arrived, {}))
        else:
            batch.events.append((r, Status.PENDING_PAYMENT, Actor.PAYMENT, r.created_at, {}))
        _add(batch, r, booking)
        return end
    # To come.
    if roll < 0.08:  # the driver cancelled it
        r.status, r.amount_due = Status.CANCELLED, 0
        r.settlement, r.settled_at = Settlement.SETTLED, now - timedelta(minutes=rng.randrange(60))
        booking["status"] = Payment.Status.CANCELED
        batch.events.append((r, Status.CONFIRMED, Actor.DRIVER, r.settled_at, {}))
        _add(batch, r, booking)
        return start
    batch.events.append((r, Status.PENDING_PAYMENT, Actor.PAYMENT, r.created_at, {}))
    _add(batch, r, booking)
    return end


def _settle(r: Reservation, booking: dict, amount: int, *, now: datetime) -> None:
    booking["status"] = Payment.Status.CAPTURED
    booking["amount_captured"] = amount
    r.settlement, r.settled_at = Settlement.SETTLED, now + 2 * MINUTE


def _add(batch: _Batch, r: Reservation, booking: dict) -> None:
    batch.reservations.append(r)
    batch.payments.append((r, booking))


_PLATE_LETTERS = "ABCDEFGHJKLMNPRSTVWXYZ"


def _plate(lot: Lot, n: int, rng: random.Random) -> str:
    # Unique per booking (one vehicle, one place at a time): the lot's letters
    # and a running number, with random letters for looks.
    tail = "".join(rng.choice(_PLATE_LETTERS) for _ in range(2))
    return f"{lot.slug[:2].upper()}{n:04}{tail}"
