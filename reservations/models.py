"""Reservations, their state machine's audit trail, and idempotent creation."""

from __future__ import annotations

import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from lots.constants import VehicleType
from lots.features import SpotNeeds, stored_features
from lots.models import Lot, Spot

# No 0/O or 1/I/L: codes are read aloud and typed at gates.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_reservation_code() -> str:
    """`R7K2-9QXM`: 8 random symbols (~39 bits), not derived from anything."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def normalize_code(code: str) -> str:
    raw = "".join(ch for ch in (code or "").upper() if ch.isalnum())
    return f"{raw[:4]}-{raw[4:]}" if len(raw) == 8 else raw


# Payments know a reservation only by this opaque reference.
PAYMENT_REFERENCE_PREFIX = "reservation:"


class Status(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", _("Awaiting payment")
    CONFIRMED = "confirmed", _("Confirmed")
    PARKED = "parked", _("Parked")
    COMPLETED = "completed", _("Completed")
    NO_SHOW = "no_show", _("No-show")
    CANCELLED = "cancelled", _("Cancelled")
    EXPIRED = "expired", _("Expired")


# States in which a reservation holds its spot over [start, occupied_until).
BLOCKING_STATUSES = (
    Status.PENDING_PAYMENT,
    Status.CONFIRMED,
    Status.PARKED,
    Status.COMPLETED,
    Status.NO_SHOW,
)
BLOCKING_Q = models.Q(status__in=BLOCKING_STATUSES)


class Settlement(models.TextChoices):
    """Where a finished reservation's money stands (DESIGN §5)."""

    NONE = "", "Not due yet"
    PENDING = "pending", "Pending"  # owed amounts set; payments being brought to them
    SETTLED = "settled", "Settled"
    ATTENTION = "attention", "Needs attention"  # a permanent failure: staff follow it up


class Reservation(models.Model):
    # Looked up whole only: migration 0021 drops the LIKE index Django adds beside
    # the unique one on PostgreSQL (an insert at a random page per booking).
    code = models.CharField(max_length=9, unique=True, default=new_reservation_code, editable=False)
    # No index of their own for user and lot: reservation_user_recent and
    # reservation_lot_start lead with them (an index less to write per booking).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="reservations",
        db_index=False,
    )
    lot = models.ForeignKey(
        Lot, on_delete=models.PROTECT, related_name="reservations", db_index=False
    )
    spot = models.ForeignKey(Spot, on_delete=models.PROTECT, related_name="reservations")
    vehicle_type = models.CharField(max_length=16, choices=VehicleType.choices)
    vehicle_plate = models.CharField(max_length=16, blank=True)
    # What the driver asked of the spot (lots/features.py): feature names, sorted,
    # comma-separated ("accessible,ev_charging"), and their vehicle's height. A
    # move to another spot keeps to them.
    requested_features = models.CharField(max_length=40, blank=True, default="")
    vehicle_height_cm = models.PositiveSmallIntegerField(null=True, blank=True)
    start = models.DateTimeField()
    end = models.DateTimeField()
    # End of the time the spot is taken: `end`, or earlier after an early departure
    # or a no-show. What the exclusion constraint protects is [start, occupied_until).
    occupied_until = models.DateTimeField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING_PAYMENT)
    price_amount = models.PositiveIntegerField(help_text="Minor units of `currency`.")
    # Fixed at booking, like the price: what a no-show pays (the first 24 hours).
    no_show_amount = models.PositiveIntegerField(default=0)
    # The rate in force when the booking was made: what an overstay is priced at.
    hourly_amount = models.PositiveIntegerField(default=0)
    daily_max_amount = models.PositiveIntegerField(default=0)
    # The lot's flex rates in force when the booking was made (lots.RateRule), so
    # that editing a rule never changes a booked price: {"tz": lot time zone,
    # "rules": [lots.pricing.FlexRule as a list, ...]}; null: the base rate alone.
    tariff_rules = models.JSONField(null=True, blank=True, editable=False)
    # What the driver owes in the end, set when the reservation is finished
    # (cancelled, expired, completed, no-show); the payment is brought to it.
    amount_due = models.PositiveIntegerField(null=True, blank=True)
    # Charged separately, off-session, when the car left after `end`.
    overstay_amount = models.PositiveIntegerField(default=0)
    # Settlement: pending once amount_due is set, retried with backoff while
    # Stripe cannot finish it, then settled, or needs attention for good.
    settlement = models.CharField(
        max_length=16, choices=Settlement.choices, default=Settlement.NONE, blank=True
    )
    settlement_attempts = models.PositiveIntegerField(default=0)
    settlement_next_at = models.DateTimeField(null=True, blank=True)
    settlement_error = models.CharField(max_length=500, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    currency = models.CharField(max_length=3)
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    arrived_at = models.DateTimeField(null=True, blank=True)
    departed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="reservation_end_after_start"
            ),
            # A car that stays past its end keeps its spot: only a parked or
            # completed reservation may hold it beyond `end`.
            models.CheckConstraint(
                condition=models.Q(occupied_until__gte=models.F("start"))
                & (
                    models.Q(occupied_until__lte=models.F("end"))
                    | models.Q(status__in=(Status.PARKED, Status.COMPLETED))
                ),
                name="reservation_occupied_from_start",
            ),
            models.CheckConstraint(
                condition=models.Q(settlement__in=Settlement.values),
                name="reservation_settlement_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=Status.values), name="reservation_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(vehicle_type__in=VehicleType.values),
                name="reservation_type_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(currency__regex=r"^[a-z]{3}$"), name="reservation_currency_iso"
            ),
            models.CheckConstraint(
                condition=~models.Q(status=Status.PENDING_PAYMENT)
                | models.Q(hold_expires_at__isnull=False),
                name="reservation_pending_has_hold",
            ),
            # On PostgreSQL, migration 0002 adds the exclusion constraint
            # `reservation_no_overlap` (spot =, tstzrange(start, occupied_until) &&).
        ]
        indexes = [
            models.Index(
                fields=["spot", "occupied_until"],
                condition=BLOCKING_Q,
                name="reservation_spot_until",
            ),
            models.Index(
                fields=["spot", "start"], condition=BLOCKING_Q, name="reservation_spot_start"
            ),
            # Best fit's candidates: the lot's bookings of a type that end last
            # before a window, and those that start first after it (hot_sql).
            models.Index(
                fields=["lot", "vehicle_type", "occupied_until", "id"],
                condition=BLOCKING_Q,
                name="reservation_lot_type_until",
            ),
            models.Index(
                fields=["lot", "vehicle_type", "start", "id"],
                condition=BLOCKING_Q,
                name="reservation_lot_type_start",
            ),
            models.Index(fields=["user", "-created_at"], name="reservation_user_recent"),
            models.Index(
                fields=["user", "hold_expires_at"],
                condition=models.Q(status=Status.PENDING_PAYMENT),
                name="reservation_user_unpaid",
            ),
            models.Index(fields=["lot", "start"], name="reservation_lot_start"),
            # The staff's list, latest start first, across lots: without it every
            # page of the admin sorted the whole history (8 s on a year of it).
            models.Index(fields=["start"], name="reservation_start"),
            models.Index(
                fields=["hold_expires_at"],
                condition=models.Q(status=Status.PENDING_PAYMENT),
                name="reservation_pending_holds",
            ),
            # Availability: when the first hold of the lot and type counted as
            # taken lapses (the cached answer's end), from that lot's holds only.
            models.Index(
                fields=["lot", "vehicle_type", "hold_expires_at"],
                condition=models.Q(status=Status.PENDING_PAYMENT),
                name="reservation_lot_open_holds",
            ),
            models.Index(
                fields=["start"],
                condition=models.Q(status=Status.CONFIRMED),
                name="reservation_confirmed_start",
            ),
            models.Index(
                fields=["settlement_next_at"],
                condition=models.Q(settlement=Settlement.PENDING),
                name="reservation_settlement_due",
            ),
            # Settlements still open (pending, or needing attention): few rows,
            # counted when /metrics is asked and listed for staff.
            models.Index(
                fields=["settlement"],
                condition=models.Q(settlement__in=(Settlement.PENDING, Settlement.ATTENTION)),
                name="reservation_settlement_open",
            ),
            models.Index(
                fields=["end"],
                condition=models.Q(status=Status.PARKED),
                name="reservation_parked_end",
            ),
            # Availability: when the first parked car of the lot and type may
            # start to overstay (the cached answer's end).
            models.Index(
                fields=["lot", "vehicle_type", "end"],
                condition=models.Q(status=Status.PARKED),
                name="reservation_lot_parked_end",
            ),
            models.Index(
                fields=["vehicle_plate", "start"],
                condition=BLOCKING_Q & ~models.Q(vehicle_plate=""),
                name="reservation_plate_start",
            ),
            # The staff's search by the start of a plate, over all of history
            # (LIKE 'AB123%' needs the pattern operator class on PostgreSQL).
            models.Index(
                fields=["vehicle_plate"],
                opclasses=["varchar_pattern_ops"],
                condition=~models.Q(vehicle_plate=""),
                name="reservation_plate_prefix",
            ),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def is_blocking(self) -> bool:
        return self.status in BLOCKING_STATUSES

    @property
    def needs(self) -> SpotNeeds:
        """What the driver asked of the spot: any spot it moves to must have it."""
        return SpotNeeds(
            features=tuple(stored_features(self.requested_features)),
            height_cm=self.vehicle_height_cm,
        )

    def is_overstaying(self, now: datetime) -> bool:
        """A car still in its spot after its end: it holds the spot until it leaves."""
        return self.status == Status.PARKED and self.end <= now


class Actor(models.TextChoices):
    DRIVER = "driver", "Driver"
    STAFF = "staff", "Staff"
    GATE = "gate", "Gate"
    SCHEDULER = "scheduler", "Scheduler"
    PAYMENT = "payment", "Payment"
    SYSTEM = "system", "System"


class ReservationEvent(models.Model):
    """One row per state change: the audit trail (who, when, from, to)."""

    # Indexed by event_reservation_at, which leads with it.
    reservation = models.ForeignKey(
        Reservation, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    from_status = models.CharField(max_length=20, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=Status.choices)
    actor = models.CharField(max_length=16, choices=Actor.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["reservation", "at"], name="event_reservation_at")]

    def __str__(self) -> str:
        return f"{self.reservation_id}: {self.from_status or '∅'} → {self.to_status}"


class IdempotencyKey(models.Model):
    """Remembers which reservation a client's `Idempotency-Key` created."""

    # Indexed by idempotency_key_unique (user, key).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the canonical request.")
    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.key} → reservation {self.reservation_id}"


def payment_reference(reservation: Reservation) -> str:
    """The reference under which payments know this reservation."""
    return f"{PAYMENT_REFERENCE_PREFIX}{reservation.code}"


# An extension's payment: the reservation's reference and the extension's number.
EXTENSION_REFERENCE_SEPARATOR = "/extension-"


def extension_payment_reference(reservation: Reservation, number: int) -> str:
    return f"{payment_reference(reservation)}{EXTENSION_REFERENCE_SEPARATOR}{number}"


def reservation_code_of(reference: str) -> str | None:
    """The reservation code in a payment reference (a booking's or an extension's)."""
    if not reference.startswith(PAYMENT_REFERENCE_PREFIX):
        return None
    return reference.removeprefix(PAYMENT_REFERENCE_PREFIX).split(EXTENSION_REFERENCE_SEPARATOR)[0]


class ReservationExtension(models.Model):
    """More time bought for a reservation: its end moved from `old_end` to
    `new_end` for `amount`, paid by a payment of its own (kind extension, under
    extension_payment_reference) on the booking's saved card.

    Created (pending) before the card is asked, so that a retried request with
    the same Idempotency-Key resumes it and every payment of a reservation can
    be found from its extensions; applied once paid and the end moved under the
    reservation's lock; declined or refused otherwise (the payment released).
    """

    class State(models.TextChoices):
        PENDING = "pending", "Being paid"
        APPLIED = "applied", "Applied"
        DECLINED = "declined", "Card declined"
        REFUSED = "refused", "Refused"

    reservation = models.ForeignKey(
        Reservation, on_delete=models.CASCADE, related_name="extensions"
    )
    number = models.PositiveIntegerField()
    old_end = models.DateTimeField()
    new_end = models.DateTimeField()
    amount = models.PositiveIntegerField(help_text="What the extra time costs, in minor units.")
    currency = models.CharField(max_length=3)
    charged_at_once = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    error_code = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["reservation", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["reservation", "number"], name="extension_number_unique"
            ),
            models.UniqueConstraint(
                fields=["reservation", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="extension_idempotency_key_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(new_end__gt=models.F("old_end")), name="extension_moves_end_on"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reservation_id} extension {self.number} ({self.state})"

    @property
    def payment_reference(self) -> str:
        return extension_payment_reference(self.reservation, self.number)


class SweepRun(models.Model):
    """When each of the scheduler's sweeps last ran: the scheduler's heartbeat.

    Beat sends the sweeps and a worker runs them, so a recent row proves both
    alive; /readyz and the metrics read it."""

    name = models.CharField(max_length=64, unique=True)
    last_run_at = models.DateTimeField()
    runs = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} at {self.last_run_at:%Y-%m-%d %H:%M:%S}"


class ReservationNotice(models.Model):
    """An e-mail a reservation gets once (its receipt, the reminder before its
    start): the row is claimed, by its uniqueness, before the e-mail is queued,
    so that two sweeps, or one run twice, never send it twice."""

    class Kind(models.TextChoices):
        RECEIPT = "receipt", "Receipt"
        REMINDER = "reminder", "Reminder before the start"

    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reservation", "kind"], name="reservation_notice_once"),
        ]

    def __str__(self) -> str:
        return f"{self.reservation_id} {self.kind}"


class Closure(models.Model):
    """A lot, or some of its spots, closed by its staff for a while (maintenance,
    an event): nothing can be booked there over [starts_at, ends_at).

    No spots named means the whole lot (`whole_lot`, set by the service from the
    spots it is given, so that booking's SQL reads a column rather than counting
    rows). Bookings already there when it is made are moved or cancelled by
    reservations/services/closures.py, which records each as a ClosureImpact.
    Lifted (`lifted_at`) rather than deleted, so that its impacts stay explained.
    """

    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="closures", db_index=False)
    whole_lot = models.BooleanField(default=True)
    spots = models.ManyToManyField(Spot, blank=True, related_name="closures")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, help_text="Shown to drivers, e.g. maintenance.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["lot", "starts_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")),
                name="closure_ends_after_start",
            ),
            models.CheckConstraint(condition=~models.Q(reason=""), name="closure_reason_set"),
            models.CheckConstraint(
                condition=models.Q(lifted_at__isnull=True)
                | models.Q(lifted_at__gte=models.F("created_at")),
                name="closure_lifted_after_created",
            ),
        ]
        indexes = [
            # Booking and availability ask "is anything of this lot closed over
            # the window?": the lot's closures still in force and not yet over,
            # a handful of rows whatever the lot's history.
            models.Index(
                fields=["lot", "ends_at"],
                condition=models.Q(lifted_at__isnull=True),
                name="closure_lot_in_force",
            ),
        ]

    def __str__(self) -> str:
        tz = self.lot.tz  # in the lot's own time, as its staff think of it
        starts, ends = self.starts_at.astimezone(tz), self.ends_at.astimezone(tz)
        return f"{self.lot}: closed {starts:%Y-%m-%d %H:%M}–{ends:%Y-%m-%d %H:%M}"

    @property
    def in_force(self) -> bool:
        return self.lifted_at is None


class ClosureImpact(models.Model):
    """What a closure did to a booking it found in its way."""

    class Outcome(models.TextChoices):
        MOVED = "moved", "Moved to another spot"
        CANCELLED = "cancelled", "Cancelled, refunded in full"
        PARKED = "parked", "Car parked in a closed spot"
        EXPIRED = "expired", "Unpaid hold lapsed, expired"

    closure = models.ForeignKey(Closure, on_delete=models.CASCADE, related_name="impacts")
    reservation = models.ForeignKey(
        Reservation, on_delete=models.CASCADE, related_name="closure_impacts"
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    from_spot = models.ForeignKey(Spot, on_delete=models.PROTECT, related_name="+")
    to_spot = models.ForeignKey(
        Spot, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        ordering = ["closure", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["closure", "reservation"], name="closure_impact_once"),
            models.CheckConstraint(
                condition=models.Q(outcome__in=["moved", "cancelled", "parked", "expired"]),
                name="closure_impact_outcome_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(outcome="moved", to_spot__isnull=False)
                | (~models.Q(outcome="moved") & models.Q(to_spot__isnull=True)),
                name="closure_impact_moved_has_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.closure_id}: {self.reservation_id} {self.outcome}"
