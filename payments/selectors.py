"""Reads about payments."""

from __future__ import annotations

from collections.abc import Iterable

from payments.models import Payment


def payment_for(*, reference: str, kind: str = Payment.Kind.BOOKING) -> Payment | None:
    return Payment.objects.filter(reference=reference, kind=kind).first()


def payments_for(
    *, references: Iterable[str], kind: str = Payment.Kind.BOOKING
) -> dict[str, Payment]:
    """Payments of many references in one query, by reference."""
    return {
        p.reference: p for p in Payment.objects.filter(reference__in=list(references), kind=kind)
    }
