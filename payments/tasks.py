"""Scheduled payment jobs; each only calls a service and is safe to run twice."""

from __future__ import annotations

from celery import shared_task

from payments import services


@shared_task
def retry_payment_operations() -> int:
    return services.payment_operations_retry()
