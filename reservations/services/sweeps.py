"""What the scheduler does every sweep (Celery beat → worker → these).

Each sweep is safe to run twice or at once: every change locks its row and is
a no-op when it already happened, and every payment call is claimed once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import CharField, Exists, OuterRef, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from config.errors import ApplicationError, Conflict
from config.pruning import RUN_LIMIT, delete_oldest
from lots.models import Lot, Spot
from lots.services import lot_availability_changed
from payments.models import Payment
from payments.services import PaymentInProgress, PaymentUnavailable, payment_settle
from reservations import hot_sql, notifications, policy
from reservations.models import (
    PAYMENT_REFERENCE_PREFIX,
    Actor,
    IdempotencyKey,
    Reservation,
    Status,
    SweepRun,
)
from reservations.selectors import booking_terms
from reservations.services.placement import MoveFailed, claim_window, reservation_move_locked
from reservations.services.settlement import reservation_payments
from reservations.services.status import (
    displace_locked,
    expire_locked,
    lock_reservation,
    record_event,
    write_status,
)
from reservations.services.transitions import (
    reservation_expire,
    reservation_mark_no_show,
)

log = logging.getLogger(__name__)


def sweep_record(*, name: str, now: datetime | None = None) -> None:
    """Note that a sweep has run (the scheduler's heartbeat)."""
    now = now or timezone.now()
    with transaction.atomic():
        updated = SweepRun.objects.filter(name=name).update(
            last_run_at=now, runs=models.F("runs") + 1
        )
        if not updated:
            SweepRun.objects.get_or_create(name=name, defaults={"last_run_at": now, "runs": 1})


def holds_expire_lapsed(*, now: datetime | None = None, limit: int = 500) -> int:
    """Expire unpaid holds past their TTL."""
    now = now or timezone.now()
    lapsed = Reservation.objects.filter(
        status=Status.PENDING_PAYMENT, hold_expires_at__lte=now
    ).values_list("pk", flat=True)
    expired = 0
    for reservation_id in list(lapsed[:limit]):
        try:
            expired += reservation_expire(reservation_id=reservation_id, at=now).changed
        except Conflict:  # paid meanwhile
            continue
    return expired


def no_shows_declare(*, now: datetime | None = None, limit: int = 500) -> int:
    """Declare the confirmed reservations nobody arrived for by start + their
    lot's grace, and charge the no-show charge. The grace is applied in SQL, so a
    lot with a long grace never crowds out the others' due no-shows."""
    now = now or timezone.now()
    # One condition per grace the lots use (a handful): each stays a range on
    # the confirmed-start index, on SQLite as on PostgreSQL.
    graces = Lot.objects.values_list("no_show_grace_minutes", flat=True).distinct()
    past_grace = Q()
    for minutes in graces:
        past_grace |= (
            Q(
                lot__no_show_grace_minutes=minutes,
                start__lte=now - timedelta(minutes=minutes),
            )
            if minutes is not None
            else Q(
                lot__no_show_grace_minutes__isnull=True,
                start__lte=now - timedelta(minutes=settings.NO_SHOW_GRACE_MINUTES),
            )
        )
    if not past_grace:
        return 0
    due = (
        Reservation.objects.filter(past_grace, status=Status.CONFIRMED)
        .order_by("start")
        .values_list("pk", flat=True)[:limit]
    )
    declared = 0
    for reservation_id in list(due):
        try:
            declared += reservation_mark_no_show(reservation_id=reservation_id, at=now).changed
        except Conflict:  # arrived meanwhile
            continue
    return declared


def overstays_hold_spots(*, now: datetime | None = None, limit: int = 200) -> int:
    """A car parked past its end keeps its spot until it leaves.

    For each such car: the bookings that would start on its spot within
    OVERSTAY_LOOKAHEAD_MINUTES are moved to another free spot of their type
    (best fit) and their drivers told; a booking with no spot left is cancelled
    with a full refund, its driver told, and the lot's staff see it. Then the
    car's hold on the spot is extended to that horizon, so that the exclusion
    constraint protects it too. Returns how many bookings were moved or cancelled.
    """
    now = now or timezone.now()
    horizon = now + timedelta(minutes=settings.OVERSTAY_LOOKAHEAD_MINUTES)
    overstayers = (
        Reservation.objects.filter(status=Status.PARKED, end__lte=now, occupied_until__lt=horizon)
        .order_by("end")
        .values_list("pk", flat=True)[:limit]
    )
    handled = 0
    for reservation_id in list(overstayers):
        handled += _overstay_hold(reservation_id=reservation_id, now=now, horizon=horizon)
    return handled


def _overstay_hold(*, reservation_id: int, now: datetime, horizon: datetime) -> int:
    with transaction.atomic():
        overstayer = lock_reservation(reservation_id)
        if not overstayer.is_overstaying(now) or overstayer.occupied_until >= horizon:
            return 0  # left, or handled by a concurrent sweep
        successor = _next_booking_of_the_car(overstayer, now)
        if successor is not None:
            _stay_on(overstayer, successor, now=now)
            return 1
        # Bookings pick and lock a spot before writing to it: holding the lock
        # keeps new ones off while the car's hold is extended.
        _lock_spot(overstayer.spot_id)
        in_the_way = (
            Reservation.objects.select_for_update(of=("self",))
            .select_related("spot")
            .filter(
                spot_id=overstayer.spot_id,
                status__in=(Status.PENDING_PAYMENT, Status.CONFIRMED),
                start__lt=horizon,
                occupied_until__gt=now,
            )
            .exclude(pk=overstayer.pk)
            .order_by("start", "pk")
        )
        if overstayer.vehicle_plate:
            # The car's own next booking is not in its way: it stays on.
            in_the_way = in_the_way.exclude(vehicle_plate=overstayer.vehicle_plate)
        in_the_way = list(in_the_way)
        for reservation in in_the_way:
            _out_of_the_way(reservation, overstayer=overstayer, now=now)
        # Never into a record that could not be moved (a finished stay, or the
        # car's own next booking).
        following = hot_sql.next_blocking_start(
            spot_pk=overstayer.spot_id,
            after=overstayer.occupied_until,
            other_than=overstayer.pk,
            now=now,
        )
        held = min(horizon, following) if following else horizon
        if held > overstayer.occupied_until:
            # Reads already count the spot as taken for as long as the car
            # stays: extending the record changes no answer, so no cache ends.
            overstayer.occupied_until = held
            overstayer.save(update_fields=["occupied_until", "updated_at"])
    return len(in_the_way)


def _lock_spot(spot_id: int) -> None:
    # Of the spot alone and unordered: Spot's default ordering joins the lot.
    Spot.objects.select_for_update(of=("self",)).filter(pk=spot_id).order_by().values_list(
        "pk"
    ).get()


def _next_booking_of_the_car(overstayer: Reservation, now: datetime) -> Reservation | None:
    """The same car's next paid booking at this lot, already begun: the car that
    never left is parked for it now."""
    if not overstayer.vehicle_plate:
        return None
    # Locked alone (see lock_reservation); its lot and spot load when needed.
    return (
        Reservation.objects.select_for_update()
        .filter(
            lot_id=overstayer.lot_id,
            vehicle_plate=overstayer.vehicle_plate,
            status=Status.CONFIRMED,
            start__gte=overstayer.end,
            start__lte=now,
            end__gt=now,
        )
        .order_by("start")
        .first()
    )


def _stay_on(first: Reservation, following: Reservation, *, now: datetime) -> None:
    """A car stayed on from one booking into its next at the lot: the first ends
    when the next begins (any gap between them is an overstay, as it was one),
    and the next is parked from then, in the car's spot if it is free for it."""
    handover = max(first.end, following.start)
    terms = booking_terms(first)
    first.departed_at = handover
    first.occupied_until = handover
    first.amount_due = policy.completion_charge(terms)
    first.overstay_amount = policy.overstay_charge(terms, handover)
    write_status(
        first,
        to=Status.COMPLETED,
        actor=Actor.SCHEDULER,
        at=now,
        data={"reason": "stayed_for_next_booking", "next": following.code},
        frees_spot=True,
    )
    data: dict = {"reason": "stayed_on", "from": first.code}
    if following.spot_id != first.spot_id:
        _lock_spot(first.spot_id)
        if not claim_window(
            spot_pk=first.spot_id, start=following.start, end=following.occupied_until, now=now
        ):
            data.update(moved_from=following.spot.label, moved_to=first.spot.label)
            following.spot_id = first.spot_id
        else:  # the car's spot is booked later on: staff may have to move the car
            data.update(car_in=first.spot.label)
    following.arrived_at = handover
    write_status(
        following, to=Status.PARKED, actor=Actor.SCHEDULER, at=now, data=data, frees_spot=True
    )


def _out_of_the_way(reservation: Reservation, *, overstayer: Reservation, now: datetime) -> None:
    spot_label = reservation.spot.label
    if reservation.status == Status.PENDING_PAYMENT and reservation.hold_expires_at <= now:
        expire_locked(reservation, at=now, actor=Actor.SYSTEM, reason="hold lapsed")
        return
    try:
        target = reservation_move_locked(reservation, now=now)
    except MoveFailed:
        displace_locked(
            reservation, at=now, data={"spot": spot_label, "overstayer": overstayer.code}
        )
        return
    lot_availability_changed(lot_id=reservation.lot_id)
    record_event(
        reservation,
        from_status=reservation.status,
        actor=Actor.SYSTEM,
        at=now,
        data={"moved_from": spot_label, "moved_to": target.label, "reason": "spot_occupied"},
    )
    notifications.moved_queue(
        reservation_id=reservation.pk, moved_from=spot_label, reason="spot_occupied"
    )


def unreported_exits_capture(*, now: datetime | None = None, limit: int = 200) -> int:
    """Cars the gate never saw leave: once the policy says so (well before a card
    hold could lapse), capture the booked price; the departure, if it is ever
    reported, settles the overstay. Staff see these cars as still parked."""
    now = now or timezone.now()
    after = timedelta(minutes=settings.UNREPORTED_EXIT_CAPTURE_MINUTES)
    reference = Concat(Value(PAYMENT_REFERENCE_PREFIX), OuterRef("code"), output_field=CharField())
    held = Payment.objects.filter(
        reference=reference,
        kind=Payment.Kind.BOOKING,
        status=Payment.Status.AUTHORISED,
        operation="",
        last_error_code="",
    )
    due = (
        Reservation.objects.filter(status=Status.PARKED, end__lte=now - after)
        .filter(Exists(held))
        .select_related("lot")
        .order_by("end")[:limit]
    )
    captured = 0
    for reservation in due:
        if policy.unreported_exit_capture_at(booking_terms(reservation), after=after) > now:
            continue
        try:
            # The booked price is what the holds of the booking and of its
            # extensions add up to: each is captured in full.
            for payment, applies in reservation_payments(reservation):
                if applies and payment.status == Payment.Status.AUTHORISED:
                    payment_settle(
                        reference=payment.reference, amount=payment.amount, kind=payment.kind
                    )
        except (PaymentUnavailable, PaymentInProgress):
            continue  # the next sweep tries again
        except ApplicationError as exc:  # recorded on the payment; staff see the car
            log.warning("Could not capture %s, still parked: %s", reservation.code, exc)
            continue
        with transaction.atomic():
            locked = lock_reservation(reservation.pk)
            record_event(
                locked,
                from_status=locked.status,
                actor=Actor.SCHEDULER,
                at=now,
                data={"captured": reservation.price_amount, "reason": "exit not reported"},
            )
        captured += 1
    return captured


def idempotency_keys_prune(
    *, now: datetime | None = None, batch: int = 1000, limit: int = RUN_LIMIT
) -> int:
    """Forget the Idempotency-Keys of bookings made more than IDEMPOTENCY_KEY_DAYS
    ago (at most `limit` a run): a client retries within minutes, and the table
    grows by a row a booking. Returns how many were deleted."""
    before = (now or timezone.now()) - timedelta(days=settings.IDEMPOTENCY_KEY_DAYS)
    deleted = delete_oldest(
        IdempotencyKey, time_field="created_at", before=before, batch=batch, limit=limit
    )
    if deleted:
        log.info("Forgot %s Idempotency-Keys of bookings before %s", deleted, before.isoformat())
    return deleted
