"""Writes about lots."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from config.errors import ApplicationError, Conflict, InvalidInput
from lots.constants import VehicleType
from lots.hours import MIDNIGHT, Hours
from lots.models import (
    GateDevice,
    Lot,
    LotStaff,
    OpeningHours,
    Rate,
    RateRule,
    Spot,
    validate_timezone,
)


def hash_key(raw: str) -> str:
    # Keys are 256-bit random strings: an unsalted SHA-256 is enough to make a
    # leaked table useless while keeping lookup a single indexed equality.
    return hashlib.sha256(raw.encode()).hexdigest()


def lot_availability_changed(*, lot_id: int) -> None:
    """Invalidate every cached availability answer of the lot.

    Call it inside the transaction that changes what the lot can offer: the new
    version commits together with the change, so no reader sees one without the
    other. Run it last in the transaction to hold the lot row lock briefly.
    """
    # Plain SQL: this runs in every booking, where the ORM's overhead shows.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE lots_lot SET availability_version = availability_version + 1 WHERE id = %s",
            [lot_id],
        )


# Error codes for fields whose validation failed in Lot.full_clean().
_LOT_FIELD_CODES = {
    "slug": "invalid_slug",
    "name": "invalid_name",
    "address": "invalid_address",
    "city": "invalid_city",
    "timezone": "invalid_timezone",
    "currency": "invalid_currency",
    "latitude": "invalid_latitude",
    "longitude": "invalid_longitude",
    "no_show_grace_minutes": "invalid_no_show_grace_minutes",
}
_CURRENCY = re.compile(r"^[a-z]{3}$")
# Room for the "-NNN" suffix inside Spot.label's 20 characters.
_MAX_PREFIX_LENGTH = 10
_LABEL_LENGTH = Spot._meta.get_field("label").max_length
MAX_SPOTS_PER_CALL = 1000


def lot_create(
    *,
    slug: str,
    name: str,
    address: str,
    city: str,
    timezone: str,
    currency: str,
    latitude: Decimal | float | str | None = None,
    longitude: Decimal | float | str | None = None,
    no_show_grace_minutes: int | None = None,
) -> Lot:
    """A new lot. Bad input is an InvalidInput naming the field; a taken slug a Conflict."""
    currency = (currency or "").strip().lower()
    timezone = (timezone or "").strip()
    # Checked first and by hand: the model checks these in table constraints,
    # whose errors would not say which field is wrong.
    if not _CURRENCY.match(currency):
        raise InvalidInput(
            "The currency must be a three-letter ISO 4217 code, e.g. eur.",
            code="invalid_currency",
            field="currency",
        )
    try:
        validate_timezone(timezone)
    except DjangoValidationError as exc:
        raise InvalidInput(
            " ".join(exc.messages), code="invalid_timezone", field="timezone"
        ) from exc

    for field, value, limit in (("latitude", latitude, 90), ("longitude", longitude, 180)):
        _check_coordinate(field, value, limit)

    lot = Lot(
        slug=(slug or "").strip(),
        name=(name or "").strip(),
        address=(address or "").strip(),
        city=(city or "").strip(),
        timezone=timezone,
        currency=currency,
        latitude=latitude,
        longitude=longitude,
        no_show_grace_minutes=no_show_grace_minutes,
    )
    try:
        lot.full_clean()
    except DjangoValidationError as exc:
        raise _lot_error(exc) from exc
    try:
        with transaction.atomic():
            lot.save(force_insert=True)
    except IntegrityError as exc:
        # full_clean saw the slug free, but a concurrent create took it since.
        raise Conflict(
            f"A lot with the id {lot.slug!r} already exists.", code="slug_taken", field="slug"
        ) from exc
    return lot


def lot_facts_set(
    *,
    lot: Lot,
    height_limit_cm: int | None = None,
    entry_instructions: str = "",
    opening_hours: list[Hours] | None = None,
) -> Lot:
    """What a driver needs to know to get in: the tallest vehicle that fits, how to
    enter, and the weekly opening hours (None or []: open 24/7), replaced whole.
    Availability answers cached for the lot end with it (bookings outside the
    new hours are refused from now on)."""
    if height_limit_cm is not None and not 100 <= height_limit_cm <= 1000:
        raise InvalidInput(
            "The height limit is in centimetres, between 100 and 1000.",
            code="invalid_height_limit",
            field="height_limit_cm",
        )
    hours = sorted(opening_hours or [])
    days = [weekday for weekday, _, _ in hours]
    if len(set(days)) != len(days) or any(not 0 <= day <= 6 for day in days):
        raise InvalidInput(
            "Give each weekday (0 Monday to 6 Sunday) at most once.",
            code="invalid_opening_hours",
            field="opening_hours",
        )
    if any(not (closes > opens or closes == MIDNIGHT) for _, opens, closes in hours):
        raise InvalidInput(
            "Closing must be after opening (00:00 means midnight).",
            code="invalid_opening_hours",
            field="opening_hours",
        )
    with transaction.atomic():
        Lot.objects.filter(pk=lot.pk).update(
            height_limit_cm=height_limit_cm, entry_instructions=(entry_instructions or "").strip()
        )
        OpeningHours.objects.filter(lot=lot).delete()
        OpeningHours.objects.bulk_create(
            OpeningHours(lot=lot, weekday=weekday, opens=opens, closes=closes)
            for weekday, opens, closes in hours
        )
        lot_availability_changed(lot_id=lot.pk)
    lot.refresh_from_db()
    return lot


def _check_coordinate(field: str, value: Decimal | float | str | None, limit: int) -> None:
    if value is None:
        return
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        number = None
    if number is None or not number.is_finite() or not -limit <= number <= limit:
        raise InvalidInput(
            f"The {field} must be a number between -{limit} and {limit}.",
            code=f"invalid_{field}",
            field=field,
        )


def _lot_error(exc: DjangoValidationError) -> ApplicationError:
    errors = getattr(exc, "error_dict", {})
    slug_errors = errors.get("slug", [])
    if any(error.code == "unique" for error in slug_errors):
        return Conflict("A lot with this id already exists.", code="slug_taken", field="slug")
    for field, field_errors in errors.items():
        if field == NON_FIELD_ERRORS:
            continue
        messages = [message for error in field_errors for message in error.messages]
        return InvalidInput(
            f"{field}: {' '.join(messages)}",
            code=_LOT_FIELD_CODES.get(field, "invalid_lot"),
            field=field,
        )
    return InvalidInput(" ".join(exc.messages), code="invalid_lot")


def _check_vehicle_type(vehicle_type: str) -> None:
    if vehicle_type not in VehicleType.values:
        raise InvalidInput(
            "Unknown vehicle type.", code="invalid_vehicle_type", field="vehicle_type"
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def rate_set(*, lot: Lot, vehicle_type: str, hourly_amount: int, daily_max_amount: int) -> Rate:
    """Create or replace what the lot charges one vehicle type, in minor units."""
    _check_vehicle_type(vehicle_type)
    if not _is_int(hourly_amount) or hourly_amount <= 0:
        raise InvalidInput(
            "The hourly amount must be a whole number of minor units above zero.",
            code="invalid_hourly_amount",
            field="hourly_amount",
        )
    if not _is_int(daily_max_amount) or daily_max_amount <= 0:
        raise InvalidInput(
            "The daily maximum must be a whole number of minor units above zero.",
            code="invalid_daily_max_amount",
            field="daily_max_amount",
        )
    if daily_max_amount < hourly_amount:
        raise InvalidInput(
            "The daily maximum cannot be less than the hourly amount.",
            code="daily_max_below_hourly",
            field="daily_max_amount",
        )
    with transaction.atomic():
        rate = Rate.objects.select_for_update().filter(lot=lot, vehicle_type=vehicle_type).first()
        if rate is None:
            rate = Rate.objects.create(
                lot=lot,
                vehicle_type=vehicle_type,
                hourly_amount=hourly_amount,
                daily_max_amount=daily_max_amount,
            )
        elif (rate.hourly_amount, rate.daily_max_amount) != (hourly_amount, daily_max_amount):
            rate.hourly_amount = hourly_amount
            rate.daily_max_amount = daily_max_amount
            rate.save(update_fields=["hourly_amount", "daily_max_amount"])
        else:
            return rate  # unchanged: cached availability answers stay valid
        lot_availability_changed(lot_id=lot.pk)
        return rate


def spots_add(
    *,
    lot: Lot,
    vehicle_type: str,
    count: int,
    prefix: str,
    has_ev_charging: bool = False,
    is_accessible: bool = False,
    is_covered: bool = False,
    max_height_cm: int | None = None,
) -> list[Spot]:
    """Add `count` spots labelled `<prefix>-NNN`, numbered after the prefix's
    highest, each with the features given (lots/features.py)."""
    _check_vehicle_type(vehicle_type)
    if max_height_cm is not None and (
        not _is_int(max_height_cm) or not 100 <= max_height_cm <= 1000
    ):
        raise InvalidInput(
            "A spot's maximum height is 100 to 1000 cm (or empty).",
            code="invalid_max_height",
            field="max_height_cm",
        )
    features = {
        "has_ev_charging": bool(has_ev_charging),
        "is_accessible": bool(is_accessible),
        "is_covered": bool(is_covered),
        "max_height_cm": max_height_cm,
    }
    if not _is_int(count) or not 1 <= count <= MAX_SPOTS_PER_CALL:
        raise InvalidInput(
            f"Add between 1 and {MAX_SPOTS_PER_CALL} spots at a time.",
            code="invalid_count",
            field="count",
        )
    prefix = (prefix or "").strip().upper()
    if not prefix.isalnum() or not prefix.isascii() or len(prefix) > _MAX_PREFIX_LENGTH:
        raise InvalidInput(
            f"The prefix must be 1 to {_MAX_PREFIX_LENGTH} letters or digits, e.g. C.",
            code="invalid_prefix",
            field="prefix",
        )
    with transaction.atomic():
        # Lock the lot so that two concurrent calls cannot number the same labels.
        Lot.objects.select_for_update().filter(pk=lot.pk).values_list("pk").get()
        highest = _highest_number(lot=lot, prefix=prefix)
        if len(f"{prefix}-{highest + count:03}") > _LABEL_LENGTH:
            raise InvalidInput(
                "The new labels would be too long; use a shorter prefix.",
                code="invalid_prefix",
                field="prefix",
            )
        spots = [
            Spot(lot=lot, vehicle_type=vehicle_type, label=f"{prefix}-{number:03}", **features)
            for number in range(highest + 1, highest + count + 1)
        ]
        created = Spot.objects.bulk_create(spots)
        lot_availability_changed(lot_id=lot.pk)
    return created


def _highest_number(*, lot: Lot, prefix: str) -> int:
    start = f"{prefix}-"
    labels = Spot.objects.filter(lot=lot, label__istartswith=start).values_list("label", flat=True)
    numbers = [int(label[len(start) :]) for label in labels if label[len(start) :].isdigit()]
    return max(numbers, default=0)


def gate_create(*, lot: Lot, name: str) -> tuple[GateDevice, str]:
    """Register a gate; returns it with its key, which is shown this once only."""
    name = name.strip()
    if not name:
        raise InvalidInput("Name the gate.", code="invalid_name", field="name")
    raw_key = "gk_" + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            gate = GateDevice.objects.create(
                lot=lot, name=name, key_hash=hash_key(raw_key), key_prefix=raw_key[:10]
            )
    except IntegrityError as exc:
        raise Conflict("This lot already has a gate of that name.", code="gate_exists") from exc
    return gate, raw_key


@transaction.atomic
def gate_revoke(*, gate_id: int) -> GateDevice:
    """Stop a gate's key from working (a lost or replaced device)."""
    gate = GateDevice.objects.select_for_update().get(pk=gate_id)
    if gate.is_active:
        gate.is_active = False
        gate.revoked_at = timezone.now()
        gate.save(update_fields=["is_active", "revoked_at"])
    return gate


def gate_touch(*, gate: GateDevice) -> None:
    """Note that the gate was heard from; at most once a minute, to spare writes."""
    now = timezone.now()
    if gate.last_seen_at is None or now - gate.last_seen_at > timedelta(minutes=1):
        GateDevice.objects.filter(pk=gate.pk).update(last_seen_at=now)


@transaction.atomic
def spot_return_to_service(*, spot_id: int) -> bool:
    """Put a spot back in service; False if it was in service already."""
    updated = Spot.objects.filter(pk=spot_id, is_active=False).update(is_active=True)
    if updated:
        lot_id = Spot.objects.filter(pk=spot_id).values_list("lot_id", flat=True).get()
        lot_availability_changed(lot_id=lot_id)
    return bool(updated)


def lot_staff_assign(*, lot: Lot, user, role: str = LotStaff.Role.MANAGER) -> LotStaff:
    """Make a user staff of a lot (idempotent); they must be able to log into the admin."""
    if not user.is_staff:
        raise InvalidInput("Only staff users can run a lot.", code="not_staff", field="user")
    with transaction.atomic():
        membership, _ = LotStaff.objects.get_or_create(lot=lot, user=user, defaults={"role": role})
    return membership


# --- flex rates (issue #15) ----------------------------------------------------------------


def rate_rule_save(*, rule: RateRule) -> RateRule:
    """Create or change a rate rule (validated by the model first). Bookings made
    before keep the rules they were made with; cached availability answers of
    the lot end with the version bump."""
    try:
        rule.full_clean()
    except DjangoValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise InvalidInput(
            " ".join(messages),
            code="invalid_rate_rule",
            field=None if field == NON_FIELD_ERRORS else field,
        ) from None
    with transaction.atomic():
        rule.save()
        lot_availability_changed(lot_id=rule.lot_id)
    return rule


def rate_rule_delete(*, rule: RateRule) -> None:
    """Remove a rate rule; bookings made with it keep it."""
    with transaction.atomic():
        lot_pk = rule.lot_id
        rule.delete()
        lot_availability_changed(lot_id=lot_pk)
