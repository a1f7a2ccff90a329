"""Serializer fields shared by the apps' APIs."""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with a UTC offset; a naive time is refused rather than guessed."""

    default_error_messages = {
        "invalid": "Use ISO 8601 with an offset, e.g. 2026-05-01T09:00:00+02:00.",
        "naive_datetime": "Give the time with a UTC offset, e.g. 2026-05-01T09:00:00+02:00.",
    }

    def to_internal_value(self, value: object) -> datetime:
        if isinstance(value, datetime):
            value = value.isoformat()
        if not isinstance(value, str):
            self.fail("invalid")
        try:
            return parse_aware(value)
        except ValueError as refused:
            self.fail(str(refused))


def parse_aware(text: str) -> datetime:
    """An ISO 8601 time with a UTC offset, in UTC; ValueError("invalid") or
    ValueError("naive_datetime") otherwise (AwareDateTimeField's error codes)."""
    try:
        parsed = parse_datetime(text.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError("invalid")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("naive_datetime")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00
        raise ValueError("invalid") from None


_MONEY_SCHEMA = {
    "type": "object",
    "nullable": True,
    "properties": {
        "amount": {"type": "integer", "description": "Minor units, e.g. cents."},
        "currency": {"type": "string", "example": "usd"},
    },
    "required": ["amount", "currency"],
}


@extend_schema_field(_MONEY_SCHEMA)
class MoneyField(serializers.Field):
    """Renders {"amount": minor units, "currency": "usd"} from a (amount, currency) pair."""

    def __init__(self, amount_attr: str, currency_attr: str = "currency", **kwargs):
        kwargs["source"] = "*"
        kwargs["read_only"] = True
        super().__init__(**kwargs)
        self.amount_attr = amount_attr
        self.currency_attr = currency_attr

    def to_representation(self, value: object) -> dict | None:
        amount = getattr(value, self.amount_attr)
        if amount is None:
            return None
        return {"amount": amount, "currency": getattr(value, self.currency_attr)}
