"""Every write about drivers: accounts, API tokens and vehicles."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import Conflict, InvalidInput, NotFound
from config.plates import normalize_plate
from lots.constants import VehicleType
from parking.models import ApiToken, User, Vehicle, hash_token


def user_register(*, email: str, password: str, full_name: str = "") -> User:
    email = User.objects.normalize_email(email).strip().lower()
    candidate = User(email=email, full_name=full_name)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), code="weak_password", field="password") from exc
    try:
        with transaction.atomic():
            return User.objects.create_user(email=email, password=password, full_name=full_name)
    except IntegrityError as exc:
        raise Conflict(
            "An account with this e-mail address already exists.",
            code="email_taken",
            field="email",
        ) from exc


@dataclass(frozen=True)
class IssuedToken:
    token: str  # the raw token: shown once, only its hash is kept
    expires_at: datetime


@transaction.atomic
def api_token_create(*, user: User) -> IssuedToken:
    """A new bearer token for an authenticated user (and the user's expired ones
    forgotten)."""
    ApiToken.objects.filter(user=user, expires_at__lte=timezone.now()).delete()
    raw = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, key_hash=hash_token(raw), prefix=raw[:8])
    return IssuedToken(token=raw, expires_at=token.expires_at)


@transaction.atomic
def api_token_revoke(*, user: User, token_id: int) -> None:
    """Revoke one of a driver's tokens (another driver's is 'not found')."""
    deleted, _ = ApiToken.objects.filter(pk=token_id, user=user).delete()
    if not deleted:
        raise NotFound("There is no such token.", code="token_not_found")


@transaction.atomic
def user_password_set(*, user: User, password: str | None) -> User:
    """Give an account a new password (None: no usable password) and revoke all
    its API tokens. Its sessions end too: each carries a hash of the password,
    which no longer matches (the view that changed it keeps its own session with
    update_session_auth_hash)."""
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.save(update_fields=["password"])
    ApiToken.objects.filter(user=user).delete()
    return user


def vehicle_add(*, owner: User, plate: str, vehicle_type: str, nickname: str = "") -> Vehicle:
    plate = normalize_plate(plate)
    if not plate:
        raise InvalidInput("Enter the number plate.", code="plate_required", field="plate")
    if vehicle_type not in VehicleType.values:
        raise InvalidInput(
            "Unknown vehicle type.", code="invalid_vehicle_type", field="vehicle_type"
        )
    try:
        with transaction.atomic():
            return Vehicle.objects.create(
                owner=owner, plate=plate, vehicle_type=vehicle_type, nickname=nickname
            )
    except IntegrityError as exc:
        raise Conflict(
            "You already have this vehicle.", code="vehicle_exists", field="plate"
        ) from exc


@transaction.atomic
def user_ensure(
    *,
    email: str,
    password: str,
    full_name: str = "",
    is_staff: bool = False,
    is_superuser: bool = False,
    groups: Iterable[Group] = (),
) -> User:
    """Make sure an account exists with these flags, password and groups (demo and
    operator accounts). Writes only what differs, so running it again changes nothing.

    Unlike user_register it does not apply the password strength rules: an
    operator chooses these passwords on purpose (the demo one is printed on start).
    """
    email = User.objects.normalize_email(email).strip().lower()
    if not email:
        raise InvalidInput("An e-mail address is required.", code="email_required", field="email")
    if not password:
        raise InvalidInput("A password is required.", code="password_required", field="password")
    user = User.objects.select_for_update().filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(
            email=email,
            password=password,
            full_name=full_name,
            is_staff=is_staff or is_superuser,
            is_superuser=is_superuser,
        )
    else:
        changed = []
        wanted = {
            "is_staff": is_staff or is_superuser,
            "is_superuser": is_superuser,
            "is_active": True,
        }
        if full_name:
            wanted["full_name"] = full_name
        for field, value in wanted.items():
            if getattr(user, field) != value:
                setattr(user, field, value)
                changed.append(field)
        # check_password first: set_password would re-salt and rewrite the hash.
        if not user.check_password(password):
            user.set_password(password)
            changed.append("password")
        if changed:
            user.save(update_fields=changed)
    missing = [group for group in groups if not user.groups.filter(pk=group.pk).exists()]
    if missing:
        user.groups.add(*missing)
    return user


@transaction.atomic
def group_ensure(*, name: str, permissions: Iterable[str]) -> Group:
    """Make sure an auth group exists with exactly these permissions.

    `permissions` are "app_label.codename" strings, e.g. "lots.view_lot".
    """
    wanted = []
    for dotted in permissions:
        app_label, _, codename = dotted.partition(".")
        permission = Permission.objects.filter(
            content_type__app_label=app_label, codename=codename
        ).first()
        if permission is None:
            raise InvalidInput(f"Unknown permission {dotted!r}.", code="unknown_permission")
        wanted.append(permission)
    group, _ = Group.objects.get_or_create(name=name)
    current = set(group.permissions.values_list("pk", flat=True))
    if current != {permission.pk for permission in wanted}:
        group.permissions.set(wanted)
    return group


def _vehicle_of(*, owner: User, vehicle_id: int) -> Vehicle:
    vehicle = Vehicle.objects.select_for_update().filter(pk=vehicle_id, owner=owner).first()
    if vehicle is None:
        raise NotFound("There is no such vehicle.", code="vehicle_not_found")
    return vehicle


def vehicle_update(
    *, owner: User, vehicle_id: int, plate: str, vehicle_type: str, nickname: str = ""
) -> Vehicle:
    """Change one of a driver's vehicles (another driver's is 'not found')."""
    plate = normalize_plate(plate)
    if not plate:
        raise InvalidInput("Enter the number plate.", code="plate_required", field="plate")
    if len(plate) > Vehicle._meta.get_field("plate").max_length:
        raise InvalidInput("That plate is too long.", code="invalid_plate", field="plate")
    if vehicle_type not in VehicleType.values:
        raise InvalidInput(
            "Unknown vehicle type.", code="invalid_vehicle_type", field="vehicle_type"
        )
    try:
        with transaction.atomic():
            vehicle = _vehicle_of(owner=owner, vehicle_id=vehicle_id)
            vehicle.plate = plate
            vehicle.vehicle_type = vehicle_type
            vehicle.nickname = nickname
            vehicle.save(update_fields=["plate", "vehicle_type", "nickname"])
            return vehicle
    except IntegrityError as exc:
        raise Conflict(
            "You already have a vehicle with this plate.", code="vehicle_exists", field="plate"
        ) from exc


@transaction.atomic
def vehicle_remove(*, owner: User, vehicle_id: int) -> None:
    """Forget one of a driver's vehicles. Reservations keep the plate they were made with."""
    _vehicle_of(owner=owner, vehicle_id=vehicle_id).delete()
