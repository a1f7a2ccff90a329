"""Reads about partner webhooks."""

from __future__ import annotations

from collections.abc import Iterable

from lots.webhooks.models import WebhookEndpoint


def webhook_lot_ids() -> set[int]:
    """The lots that have at least one active endpoint (few rows, one index)."""
    return set(
        WebhookEndpoint.objects.filter(is_active=True).values_list("lot_id", flat=True).distinct()
    )


def webhook_endpoints_for(lot_ids: Iterable[int]) -> list[WebhookEndpoint]:
    return list(WebhookEndpoint.objects.filter(is_active=True, lot_id__in=set(lot_ids)))
