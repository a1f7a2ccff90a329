"""Celery entry points of the lots app; each only calls a service."""

from __future__ import annotations

from celery import shared_task

from lots.webhooks.services import deliveries_prune, deliveries_send_due


@shared_task
def send_webhooks() -> int:
    """Send the partner webhook deliveries that are due (beat, and after a dispatch)."""
    return deliveries_send_due()


@shared_task
def prune_webhook_log() -> int:
    """Forget deliveries finished more than WEBHOOK_LOG_DAYS ago (beat, hourly)."""
    return deliveries_prune()
