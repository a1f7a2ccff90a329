"""Where a reservation goes: the best free spot for a window, and moving a
reservation to another spot when its own cannot be used.

Both run inside the caller's transaction and follow one protocol: pick the
best-fit spot and lock it (moving past spots another booking is taking), look
again under the lock, write, and let the exclusion constraint have the last
word. A lost race costs a savepoint and moves on to the next spot.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from django.db import IntegrityError, transaction

from config.errors import Conflict
from lots.features import NO_NEEDS, SpotNeeds
from lots.models import Spot
from reservations import hot_sql
from reservations.models import Actor, Reservation, Status
from reservations.services.status import expire_locked

# Spots tried before answering "no spot"; each try is a savepoint, so a lost race
# costs one round trip and releases that spot's lock.
MAX_SPOT_ATTEMPTS = 10

# The PostgreSQL exclusion constraint of migration 0002.
NO_OVERLAP_CONSTRAINT = "reservation_no_overlap"

T = TypeVar("T")


class NoSpotAvailable(Conflict):
    code = "no_spot_available"


class _SpotTaken(Exception):
    pass


def is_overlap_violation(exc: IntegrityError) -> bool:
    """True when the exclusion constraint refused an overlapping hold (a race that
    the checks missed); any other integrity error is a bug and must surface."""
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == NO_OVERLAP_CONSTRAINT


def claim_window(*, spot_pk: int, start: datetime, end: datetime, now: datetime) -> bool:
    """With the spot locked, True if something holds it over [start, end).

    A hold past its TTL never blocks a booking, even with the scheduler down: the
    lapsed holds met here are expired on the spot (and settled after the commit).
    """
    lapsed_ids = []
    for pk, status, hold_expires_at in hot_sql.overlapping_on_spot(
        spot_pk=spot_pk, start=start, end=end, now=now
    ):
        if not (status == Status.PENDING_PAYMENT and hold_expires_at <= now):
            return True
        lapsed_ids.append(pk)
    for reservation in Reservation.objects.filter(pk__in=lapsed_ids).order_by("pk"):
        expire_locked(
            reservation, at=now, actor=Actor.SYSTEM, reason="hold lapsed; spot taken by a booking"
        )
    return False


def place(
    *,
    lot_pk: int,
    vehicle_type: str,
    start: datetime,
    end: datetime,
    now: datetime,
    write: Callable[[Spot], T],
    exclude: tuple[int, ...] = (),
    wait_for_locked: bool = True,
    needs: SpotNeeds = NO_NEEDS,
) -> T:
    """Call `write(spot)` with the best free spot for [start, end) that has what
    the booking `needs` locked; return what it returns. NoSpotAvailable when no
    spot can be had.

    `wait_for_locked`: when every free spot is being taken by other transactions,
    wait for one of them to know the outcome; without it, NoSpotAvailable at
    once (a booking: those spots are nearly always kept, and a queue of waiters
    on a sold-out lot's last spots is what made refusals slow)."""
    tried = list(exclude)
    for _ in range(MAX_SPOT_ATTEMPTS):
        pick = {
            "lot_pk": lot_pk,
            "vehicle_type": vehicle_type,
            "start": start,
            "end": end,
            "now": now,
            "exclude": tried,
            "needs": needs,
        }
        try:
            with transaction.atomic():
                # Move past spots another booking is taking; only when every free
                # spot is being taken (and the caller can wait), wait for one.
                row = hot_sql.pick_spot(**pick, wait=False)
                if row is None and wait_for_locked:
                    row = hot_sql.pick_spot(**pick, wait=True)
                if row is None:
                    break
                spot = Spot.from_db("default", hot_sql.SPOT_COLUMNS, row)
                tried.append(spot.pk)
                # Our snapshot may predate a booking committed while we waited
                # for the lock: look again now that the spot is ours.
                if claim_window(spot_pk=spot.pk, start=start, end=end, now=now):
                    raise _SpotTaken
                return write(spot)
        except _SpotTaken:
            continue
        except IntegrityError as exc:
            if not is_overlap_violation(exc):
                raise
            continue
    raise no_spot(needs)


def no_spot(needs: SpotNeeds) -> NoSpotAvailable:
    """The refusal when nothing fits: with needs, a code of its own, so that a
    client can offer to book without them."""
    if needs:
        what = needs.describe()  # "EV charging, for a vehicle 210 cm tall"
        return NoSpotAvailable(
            f"No spot {'with ' if needs.features else ''}{what} is free for that whole window.",
            code="no_spot_with_features",
        )
    return NoSpotAvailable("No spot is free for that whole window.")


class MoveFailed(Exception):
    """No other spot of the type is free for the reservation's window."""


def reservation_move_locked(reservation: Reservation, *, now: datetime) -> Spot:
    """Put a reservation, locked by the caller, on the best other free spot for
    its window [start, occupied_until) that still has what the driver asked
    for. Raises MoveFailed if there is none."""
    away_from = reservation.spot

    def write(target: Spot) -> Spot:
        reservation.spot = target
        reservation.save(update_fields=["spot", "updated_at"])
        return target

    try:
        return place(
            lot_pk=reservation.lot_id,
            vehicle_type=reservation.vehicle_type,
            start=reservation.start,
            end=reservation.occupied_until,
            now=now,
            write=write,
            exclude=(away_from.pk,),
            needs=reservation.needs,
        )
    except NoSpotAvailable:
        reservation.spot = away_from
        raise MoveFailed from None
    except IntegrityError:
        reservation.spot = away_from
        raise
