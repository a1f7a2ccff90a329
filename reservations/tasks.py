"""Scheduled jobs (Celery beat → worker). Each only calls a service, and each
is safe to run twice or concurrently."""

from __future__ import annotations

from celery import shared_task

from reservations import emails, services


@shared_task
def expire_lapsed_holds() -> int:
    return services.holds_expire_lapsed()


@shared_task
def declare_no_shows() -> int:
    return services.no_shows_declare()


@shared_task
def settle_payments() -> int:
    return services.reservations_settle_pending()


@shared_task(
    autoretry_for=(OSError,),  # SMTP trouble: try again later
    retry_backoff=30,
    retry_backoff_max=3600,
    max_retries=8,
)
def send_reservation_pass(*, reservation_id: int) -> None:
    emails.send_reservation_pass(reservation_id=reservation_id)
