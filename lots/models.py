"""Lots, their spots and their rates."""

from __future__ import annotations

import secrets
import unicodedata
import zoneinfo
from datetime import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from lots.constants import VehicleType
from lots.pricing import FlexRule

_PUBLIC_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_spot_public_id() -> str:
    return "sp_" + "".join(secrets.choice(_PUBLIC_ID_ALPHABET) for _ in range(12))


def search_key(text: str) -> str:
    """Text as lot searches compare it: lower case, without accents or extra spaces
    ("Opéra  PARIS" -> "opera paris"), the same on SQLite and PostgreSQL."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not an IANA time zone name.") from exc


class Lot(models.Model):
    slug = models.SlugField(
        max_length=60, unique=True, help_text="The lot's id in URLs and the API."
    )
    name = models.CharField(max_length=120)
    address = models.CharField(max_length=255)
    city = models.CharField(max_length=80, db_index=True)
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    timezone = models.CharField(
        max_length=64, validators=[validate_timezone], help_text="IANA name, e.g. Europe/Paris."
    )
    currency = models.CharField(max_length=3, help_text="ISO 4217 code, lower case, e.g. usd.")
    no_show_grace_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Overrides NO_SHOW_GRACE_MINUTES for this lot."
    )
    is_active = models.BooleanField(default=True)
    height_limit_cm = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Tallest vehicle that fits, in centimetres (empty: no limit).",
    )
    entry_instructions = models.TextField(
        max_length=2000,
        blank=True,
        help_text="How to get in, shown on the lot page and the pass (e.g. which entrance).",
    )
    # Name, address and city as search_key() writes them: address searches match
    # "opera" to "Opéra" on every database without an extension (kept by save()).
    search_text = models.CharField(max_length=500, blank=True, editable=False)
    # Bumped in the same transaction as every change to what the lot can offer, so
    # a cached availability answer keyed by it can never outlive a committed booking.
    availability_version = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(currency__regex=r"^[a-z]{3}$"), name="lot_currency_iso"
            ),
            models.CheckConstraint(condition=~models.Q(timezone=""), name="lot_timezone_set"),
            models.CheckConstraint(
                condition=models.Q(latitude__isnull=True)
                | models.Q(latitude__gte=-90, latitude__lte=90),
                name="lot_latitude_range",
            ),
            models.CheckConstraint(
                condition=models.Q(longitude__isnull=True)
                | models.Q(longitude__gte=-180, longitude__lte=180),
                name="lot_longitude_range",
            ),
            models.CheckConstraint(
                condition=models.Q(height_limit_cm__isnull=True)
                | models.Q(height_limit_cm__gte=100, height_limit_cm__lte=1000),
                name="lot_height_limit_range",
            ),
        ]
        # "Lots near here" reads a latitude band through this index, then the
        # longitude band inside it, before computing any distance.
        indexes = [models.Index(fields=["latitude", "longitude"], name="lot_position")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.currency = (self.currency or "").lower()
        self.search_text = search_key(f"{self.name} {self.address} {self.city}")
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and {"name", "address", "city"} & set(update_fields):
            kwargs["update_fields"] = {*update_fields, "search_text"}
        super().save(*args, **kwargs)

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class OpeningHours(models.Model):
    """When a lot is open on one day of the week, in its own local time.

    A lot without any rows is open 24/7; once it has some, a day without a row is
    a closed day. Closing at 00:00 means midnight at the end of the day, so a lot
    open through the night has 18:00-00:00 on one day and 00:00-06:00 the next.
    """

    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    lot = models.ForeignKey(Lot, on_delete=models.CASCADE, related_name="opening_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens = models.TimeField(help_text="Local time at the lot, e.g. 07:00.")
    closes = models.TimeField(help_text="Local time at the lot; 00:00 is midnight.")

    class Meta:
        ordering = ["lot", "weekday"]
        verbose_name = "opening hours"
        verbose_name_plural = "opening hours"
        constraints = [
            models.UniqueConstraint(fields=["lot", "weekday"], name="opening_hours_one_per_day"),
            models.CheckConstraint(
                condition=models.Q(weekday__gte=0, weekday__lte=6), name="opening_hours_weekday"
            ),
            models.CheckConstraint(
                condition=models.Q(closes__gt=models.F("opens")) | models.Q(closes=time(0)),
                name="opening_hours_closes_after_opens",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}-{self.closes:%H:%M}"

    def clean(self) -> None:
        known = self.opens is not None and self.closes is not None
        if known and not (self.closes > self.opens or self.closes == time(0)):
            raise ValidationError(
                {"closes": "Closing must be after opening (00:00 means midnight)."}
            )


class Spot(models.Model):
    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="spots")
    public_id = models.CharField(
        max_length=16, unique=True, default=new_spot_public_id, editable=False
    )
    label = models.CharField(max_length=20, help_text="As painted on the ground, e.g. B-014.")
    vehicle_type = models.CharField(max_length=16, choices=VehicleType.choices)
    is_active = models.BooleanField(default=True, help_text="Out of service when off.")
    # Features a driver may ask for (lots/features.py): a booking that asks gets
    # only a spot that has them all.
    has_ev_charging = models.BooleanField("EV charging", default=False)
    is_accessible = models.BooleanField(
        "accessible", default=False, help_text="Disabled parking: wider, near the exit."
    )
    is_covered = models.BooleanField("covered", default=False)
    max_height_cm = models.PositiveSmallIntegerField(
        "maximum vehicle height (cm)",
        null=True,
        blank=True,
        help_text="Tallest vehicle this spot takes (empty: whatever the lot's limit allows).",
    )

    class Meta:
        ordering = ["lot", "label"]
        constraints = [
            models.UniqueConstraint(fields=["lot", "label"], name="spot_label_unique_in_lot"),
            models.CheckConstraint(
                condition=models.Q(vehicle_type__in=VehicleType.values), name="spot_type_valid"
            ),
            models.CheckConstraint(condition=~models.Q(label=""), name="spot_label_not_empty"),
            models.CheckConstraint(
                condition=models.Q(max_height_cm__isnull=True)
                | models.Q(max_height_cm__gte=100, max_height_cm__lte=1000),
                name="spot_max_height_range",
            ),
        ]
        indexes = [models.Index(fields=["lot", "vehicle_type", "is_active"], name="spot_lookup")]

    def __str__(self) -> str:
        return f"{self.label} ({self.get_vehicle_type_display()})"


class Rate(models.Model):
    """What a lot charges one vehicle type, in the lot's currency's minor units."""

    lot = models.ForeignKey(Lot, on_delete=models.CASCADE, related_name="rates")
    vehicle_type = models.CharField(max_length=16, choices=VehicleType.choices)
    hourly_amount = models.PositiveIntegerField(help_text="Per started hour, in minor units.")
    daily_max_amount = models.PositiveIntegerField(
        help_text="Cap for each 24-hour block, in minor units."
    )

    class Meta:
        ordering = ["lot", "vehicle_type"]
        constraints = [
            models.UniqueConstraint(fields=["lot", "vehicle_type"], name="rate_one_per_type"),
            models.CheckConstraint(
                condition=models.Q(vehicle_type__in=VehicleType.values), name="rate_type_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(hourly_amount__gt=0), name="rate_hourly_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(daily_max_amount__gte=models.F("hourly_amount")),
                name="rate_daily_max_at_least_hourly",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lot}: {self.get_vehicle_type_display()}"


class RateRule(models.Model):
    """A flex rate (issue #15): a different hourly amount on some weekdays between
    two local times (weekly), or over a range of moments (event). Each started
    hour of a window is charged at the amount in force at its start; an event
    beats a weekly rule, a higher priority a lower one (lots.pricing.FlexRule);
    every 24-hour block is still capped at the Rate's daily maximum. Bookings
    keep the rules in force when they were made (Reservation.tariff_rules).
    """

    class Kind(models.TextChoices):
        WEEKLY = "weekly", "Weekly (weekdays and times)"
        EVENT = "event", "Event (a date range)"

    lot = models.ForeignKey(Lot, on_delete=models.CASCADE, related_name="rate_rules")
    name = models.CharField(max_length=60, help_text='Shown to drivers, e.g. "weekday peak".')
    vehicle_type = models.CharField(
        max_length=16, choices=VehicleType.choices, blank=True, help_text="Blank: every type."
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.WEEKLY)
    weekdays = models.PositiveSmallIntegerField(
        default=0, help_text="Weekly: a bit mask, bit 0 Monday … bit 6 Sunday."
    )
    start_time = models.TimeField(null=True, blank=True, help_text="Weekly: local time at the lot.")
    end_time = models.TimeField(
        null=True, blank=True, help_text="Weekly: local time at the lot; 00:00 is midnight."
    )
    starts_at = models.DateTimeField(null=True, blank=True, help_text="Event: first moment.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Event: end (excluded).")
    hourly_amount = models.PositiveIntegerField(help_text="Per started hour, in minor units.")
    priority = models.SmallIntegerField(
        default=0, help_text="Where two rules of a kind hold at once, the higher wins."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["lot_id", "kind", "-priority", "name"]
        indexes = [models.Index(fields=["lot", "is_active"], name="raterule_lot_active")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(hourly_amount__gt=0), name="raterule_hourly_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(vehicle_type__in=[*VehicleType.values, ""]),
                name="raterule_type_valid",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(
                        kind="weekly",
                        weekdays__gte=1,
                        weekdays__lte=127,
                        start_time__isnull=False,
                        end_time__isnull=False,
                    )
                    & (models.Q(end_time__gt=models.F("start_time")) | models.Q(end_time=time(0)))
                )
                | models.Q(
                    kind="event",
                    starts_at__isnull=False,
                    ends_at__gt=models.F("starts_at"),
                ),
                name="raterule_kind_fields",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lot}: {self.name}"

    @property
    def weekday_list(self) -> list[int]:
        return [day for day in range(7) if self.weekdays >> day & 1]

    def as_flex(self) -> FlexRule:
        """The rule as lots.pricing sees it (plain values; JSON as a list)."""
        if self.kind == self.Kind.EVENT:
            return FlexRule(
                "event",
                self.name,
                self.hourly_amount,
                self.priority,
                starts_at=self.starts_at.timestamp(),
                ends_at=self.ends_at.timestamp(),
            )
        end = self.end_time.hour * 60 + self.end_time.minute
        return FlexRule(
            "weekly",
            self.name,
            self.hourly_amount,
            self.priority,
            self.weekdays,
            self.start_time.hour * 60 + self.start_time.minute,
            end or 24 * 60,  # 00:00: midnight at the end of the day
        )

    def clean(self) -> None:
        if self.kind == self.Kind.WEEKLY:
            errors = {}
            if not 1 <= (self.weekdays or 0) <= 127:
                errors["weekdays"] = "Choose at least one weekday."
            if self.start_time is None:
                errors["start_time"] = "A weekly rule needs a start time."
            if self.end_time is None:
                errors["end_time"] = "A weekly rule needs an end time (00:00 is midnight)."
            elif self.start_time is not None and not (
                self.end_time > self.start_time or self.end_time == time(0)
            ):
                errors["end_time"] = (
                    "The end must be after the start (00:00 means midnight); "
                    "a rule through the night is two rules."
                )
            if errors:
                raise ValidationError(errors)
        elif self.kind == self.Kind.EVENT:
            if self.starts_at is None:
                raise ValidationError({"starts_at": "An event needs a start."})
            if self.ends_at is None or self.ends_at <= self.starts_at:
                raise ValidationError({"ends_at": "An event must end after it starts."})


class GateDevice(models.Model):
    """A lot's gate hardware; it authenticates with a key of which only the hash is kept."""

    lot = models.ForeignKey(Lot, on_delete=models.CASCADE, related_name="gates")
    name = models.CharField(max_length=80, help_text="e.g. North entrance.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(max_length=12, editable=False, help_text="To tell keys apart.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["lot", "name"]
        constraints = [
            models.UniqueConstraint(fields=["lot", "name"], name="gate_name_unique_in_lot"),
        ]

    def __str__(self) -> str:
        return f"{self.lot}: {self.name}"


class LotStaff(models.Model):
    """A staff user's membership of a lot: in the admin they see and run only the
    lots they are members of (superusers see every lot). What they may do there
    comes from their Django permissions; the role says what they are to the lot."""

    class Role(models.TextChoices):
        MANAGER = "manager", "Manager"
        ATTENDANT = "attendant", "Attendant"

    lot = models.ForeignKey(Lot, on_delete=models.CASCADE, related_name="staff_memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lot_memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ATTENDANT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["lot", "user"]
        verbose_name = "lot staff member"
        verbose_name_plural = "lot staff"
        constraints = [
            models.UniqueConstraint(fields=["lot", "user"], name="lot_staff_unique"),
            models.CheckConstraint(
                condition=models.Q(role__in=["manager", "attendant"]), name="lot_staff_role_valid"
            ),
        ]
        # The (lot, user) constraint's index serves "who staffs this lot";
        # this one serves "which lots does this user staff", asked on every
        # admin page.
        indexes = [models.Index(fields=["user", "lot"], name="lot_staff_user")]

    def __str__(self) -> str:
        return f"{self.user} at {self.lot} ({self.get_role_display()})"


# Partner webhooks (lots/webhooks/): an endpoint belongs to a lot.
from lots.webhooks.models import (  # noqa: E402, F401
    WebhookDelivery,
    WebhookEndpoint,
    WebhookStream,
)
