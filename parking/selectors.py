"""Reads about drivers."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from parking.models import ApiToken, User


def api_tokens_active(*, user: User) -> QuerySet[ApiToken]:
    """The driver's tokens that still work, newest first."""
    return ApiToken.objects.filter(user=user, expires_at__gt=timezone.now()).order_by(
        "-created_at", "-pk"
    )
