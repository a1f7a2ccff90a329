"""Scheduled payment jobs; each only calls a service and is safe to run twice."""

from __future__ import annotations

import structlog
from celery import shared_task

from payments import services

log = structlog.stdlib.get_logger("parkspot.sweeps")


@shared_task
def retry_payment_operations() -> int:
    done = services.payment_operations_retry()
    (log.info if done else log.debug)("sweep.ran", sweep="retry_payment_operations", done=done)
    return done


@shared_task
def prune_stripe_events() -> int:
    """Forget processed webhook events older than STRIPE_EVENT_DAYS (beat, hourly)."""
    return services.stripe_events_prune()
