"""Drivers: the user account (log in with e-mail), their vehicles and API tokens."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.plates import normalize_plate
from lots.constants import VehicleType


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra) -> User:
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create(email, password, **extra)

    def get_by_natural_key(self, username: str) -> User:
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(_("e-mail address"), unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(
        default=False, help_text="Can log into the admin (lot staff and operators)."
    )
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)
    # The language of the website they last used (signing up, booking, the
    # switcher): their e-mails are written in it, by the worker, which has no request.
    language = models.CharField(max_length=8, choices=settings.LANGUAGES, default="en")

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


class Vehicle(models.Model):
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="vehicles")
    plate = models.CharField(max_length=16, help_text="Stored upper case without spaces.")
    vehicle_type = models.CharField(max_length=16, choices=VehicleType.choices)
    nickname = models.CharField(max_length=60, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "plate"], name="vehicle_plate_unique_per_owner"
            ),
            models.CheckConstraint(
                condition=models.Q(vehicle_type__in=VehicleType.values),
                name="vehicle_type_valid",
            ),
            models.CheckConstraint(condition=~models.Q(plate=""), name="vehicle_plate_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.plate} ({self.get_vehicle_type_display()})"

    def save(self, *args, **kwargs) -> None:
        self.plate = normalize_plate(self.plate)
        super().save(*args, **kwargs)


def hash_token(raw: str) -> str:
    # Tokens are 256-bit random strings, so an unsalted SHA-256 is enough to make
    # a leaked table useless while keeping lookup a single indexed equality.
    return hashlib.sha256(raw.encode()).hexdigest()


def token_expiry() -> datetime:
    return timezone.now() + timedelta(days=settings.API_TOKEN_LIFETIME_DAYS)


class ApiToken(models.Model):
    """A bearer token for API clients; only its hash is stored. It works until
    it expires, its driver revokes it, or their password changes (then it is deleted)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="First characters, to tell tokens apart.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(
        null=True, blank=True, help_text="To within a few minutes (see LAST_USED_EVERY)."
    )
    expires_at = models.DateTimeField(
        default=token_expiry,
        help_text="After this it no longer works (API_TOKEN_LIFETIME_DAYS after it was made).",
    )

    # last_used_at is written at most this often, not on every request.
    LAST_USED_EVERY = timedelta(minutes=5)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class SignupRequest(models.Model):
    """A sign-up waiting for its e-mail address to be confirmed. The account is
    made from it when the link e-mailed to that address is opened, so a sign-up
    never tells whether the address already has an account (that one gets an
    e-mail instead)."""

    email = models.EmailField(db_index=True)
    full_name = models.CharField(max_length=150, blank=True)
    password = models.CharField(max_length=128, help_text="Hashed, as User.password.")
    next_path = models.CharField(
        max_length=500, blank=True, help_text="Where the driver was going when they signed up."
    )
    # The website's language when they signed up: the link's e-mail and the account use it.
    language = models.CharField(max_length=8, choices=settings.LANGUAGES, default="en")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.email} ({self.created_at:%Y-%m-%d %H:%M})"
