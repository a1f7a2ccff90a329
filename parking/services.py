"""Every write about drivers: accounts (sign-up, passwords), API tokens and vehicles."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import get_supported_language_variant

from config.errors import Conflict, InvalidInput, NotFound
from config.plates import normalize_plate
from lots.constants import VehicleType
from parking import limits, notifications
from parking.models import ApiToken, SignupRequest, User, Vehicle, hash_token
from payments.models import Payment
from payments.services import payment_card_check_id, payment_card_remove
from reservations.models import Reservation, Settlement, Status, reservation_code_of


def _normalize_email(email: str) -> str:
    return User.objects.normalize_email(email).strip().lower()


SIGNUP_TOKEN_SALT = "parking.signup"  # noqa: S105  (a signing namespace, not a secret)


def signup_token(*, signup_id: int) -> str:
    """The secret part of the link that finishes a sign-up (signed, dated)."""
    return signing.dumps(signup_id, salt=SIGNUP_TOKEN_SALT)


def _signup_of(token: str, *, lock: bool = False) -> SignupRequest:
    try:
        signup_id = signing.loads(
            token, salt=SIGNUP_TOKEN_SALT, max_age=settings.SIGNUP_CONFIRM_HOURS * 3600
        )
    except signing.BadSignature:  # tampered, or older than SIGNUP_CONFIRM_HOURS
        signup_id = None
    oldest = timezone.now() - timedelta(hours=settings.SIGNUP_CONFIRM_HOURS)
    pending = SignupRequest.objects.filter(created_at__gt=oldest)
    if lock:
        pending = pending.select_for_update()
    signup = pending.filter(pk=signup_id).first() if isinstance(signup_id, int) else None
    if signup is None:
        raise NotFound(
            "This link does not work: it may have been used already, or it is too old. "
            "Sign up again to get a new one.",
            code="signup_link_invalid",
        )
    return signup


def user_signup(
    *, email: str, password: str, full_name: str = "", next_path: str = "", language: str = ""
) -> str:
    """Start a sign-up: whoever asks is answered the same whether the address has
    an account or not (the normalised address is returned), and the e-mail does
    the telling: a new address gets a link that opens the account (signup_confirm),
    an address with an account a note that someone tried, with how to log in or
    reset the password. At most THROTTLE_ACCOUNT_EMAIL_RATE such e-mails go to one
    address; beyond it nothing is sent, and the answer stays the same."""
    email = _normalize_email(email)
    try:
        validate_password(password, user=User(email=email, full_name=full_name))
    except DjangoValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), code="weak_password", field="password") from exc
    # Hashed whether or not it is kept: the time taken must not tell the cases apart.
    hashed = make_password(password)
    if limits.EMAILS_PER_ADDRESS.hit(email) is not None:
        return email
    with transaction.atomic():
        SignupRequest.objects.filter(
            created_at__lte=timezone.now() - timedelta(hours=settings.SIGNUP_CONFIRM_HOURS)
        ).delete()
        existing = User.objects.filter(email__iexact=email).first()
        if existing is not None:
            notifications.signup_existing_queue(user_id=existing.pk)
        else:
            signup = SignupRequest.objects.create(
                email=email,
                full_name=full_name,
                password=hashed,
                next_path=next_path,
                language=_supported_language(language),
            )
            notifications.signup_link_queue(signup_id=signup.pk)
    return email


def _supported_language(language: str) -> str:
    """One of LANGUAGES ("fr" for "fr-ca"); the default for anything else."""
    try:
        return get_supported_language_variant(language or settings.LANGUAGE_CODE)
    except LookupError:
        return settings.LANGUAGE_CODE


def user_language_set(*, user: User, language: str) -> None:
    """Remember the language a driver uses the website in, for their e-mails.
    Writes only when it changed (it is called on every booking)."""
    language = _supported_language(language)
    if user.language != language:
        User.objects.filter(pk=user.pk).update(language=language)
        user.language = language


def signup_pending(*, token: str) -> SignupRequest:
    """The sign-up a link finishes, if the link still works (else NotFound)."""
    return _signup_of(token)


@dataclass(frozen=True)
class SignupConfirmed:
    user: User
    next_path: str


@transaction.atomic
def user_signup_confirm(*, token: str) -> SignupConfirmed:
    """Open the account a sign-up link stands for, with the password chosen when
    signing up. The address's other pending sign-ups are dropped; if it has an
    account already (another link was opened first), nothing is made: Conflict."""
    signup = _signup_of(token, lock=True)
    SignupRequest.objects.filter(email=signup.email).delete()
    try:
        with transaction.atomic():
            user = User(
                email=signup.email,
                full_name=signup.full_name,
                password=signup.password,
                language=signup.language,
            )
            user.save()
    except IntegrityError as exc:
        raise Conflict(
            "This e-mail address already has an account: log in with it.",
            code="email_taken",
            field="email",
        ) from exc
    return SignupConfirmed(user=user, next_path=signup.next_path)


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

    Unlike user_signup it does not apply the password strength rules: an
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


# --- saved cards ------------------------------------------------------------------------------


class CardInUse(Conflict):
    code = "card_in_use"


def saved_card_remove(*, user: User, payment_method_id: str) -> None:
    """Remove one of the driver's saved cards, unless a booking still needs it
    (an overstay or an extension is charged to the card the booking was paid
    with, until the booking is settled)."""
    payment_card_check_id(payment_method_id)
    references = Payment.objects.filter(
        user=user, payment_method_id=payment_method_id, kind=Payment.Kind.BOOKING
    ).values_list("reference", flat=True)[:200]
    codes = {reservation_code_of(reference) for reference in references} - {None}
    if (
        codes
        and Reservation.objects.filter(user=user, code__in=codes)
        .filter(
            models.Q(status__in=(Status.PENDING_PAYMENT, Status.CONFIRMED, Status.PARKED))
            | models.Q(settlement__in=(Settlement.PENDING, Settlement.ATTENTION))
        )
        .exists()
    ):
        raise CardInUse(
            "A booking that is not finished yet is paid with this card: it can be removed "
            "once that booking is settled.",
        )
    payment_card_remove(user=user, payment_method_id=payment_method_id)
