"""Every write about drivers: accounts, API tokens and vehicles."""

from __future__ import annotations

import secrets

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from config.errors import ApplicationError, Conflict, InvalidInput
from lots.constants import VehicleType
from parking.models import ApiToken, User, Vehicle, hash_token, normalize_plate


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


class InvalidCredentials(ApplicationError):
    code = "invalid_credentials"
    status = 400


@transaction.atomic
def api_token_create(*, email: str, password: str) -> str:
    """Exchange credentials for a new bearer token; the raw token is returned once."""
    user = authenticate(username=email.strip().lower(), password=password)
    if user is None:
        raise InvalidCredentials("E-mail address or password is wrong.")
    raw = secrets.token_urlsafe(32)
    ApiToken.objects.create(user=user, key_hash=hash_token(raw), prefix=raw[:8])
    return raw


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
