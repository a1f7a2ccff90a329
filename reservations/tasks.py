"""Scheduled jobs (Celery beat → worker) and e-mails. Each only calls a service,
and each is safe to run twice or concurrently."""

from __future__ import annotations

import structlog
from celery import shared_task

from lots.tasks import send_webhooks
from reservations import emails, services
from reservations.services.webhooks import webhook_events_dispatch

log = structlog.stdlib.get_logger("parkspot.sweeps")


def _sweep(name: str, run) -> int:
    done = run()
    services.sweep_record(name=name)  # the scheduler's heartbeat (/readyz)
    # Each reservation it changed has a line of its own; this says the sweep ran
    # (at debug when it found nothing to do: every minute, six sweeps).
    (log.info if done else log.debug)("sweep.ran", sweep=name, done=done)
    return done


@shared_task
def expire_lapsed_holds() -> int:
    return _sweep("expire_lapsed_holds", services.holds_expire_lapsed)


@shared_task
def declare_no_shows() -> int:
    return _sweep("declare_no_shows", services.no_shows_declare)


@shared_task
def hold_spots_of_overstayers() -> int:
    return _sweep("hold_spots_of_overstayers", services.overstays_hold_spots)


@shared_task
def capture_unreported_exits() -> int:
    return _sweep("capture_unreported_exits", services.unreported_exits_capture)


@shared_task
def prune_idempotency_keys() -> int:
    """Forget Idempotency-Keys older than IDEMPOTENCY_KEY_DAYS (beat, hourly)."""
    return services.idempotency_keys_prune()


@shared_task
def settle_payments() -> int:
    return _sweep("settle_payments", services.reservations_settle_pending)


@shared_task
def send_reminders() -> int:
    return _sweep("send_reminders", services.reminders_queue)


_MAIL_RETRY = {
    "autoretry_for": (OSError,),  # SMTP trouble: try again later
    "retry_backoff": 30,
    "retry_backoff_max": 3600,
    "max_retries": 8,
}


@shared_task(**_MAIL_RETRY)
def send_reservation_pass(*, reservation_id: int) -> None:
    emails.send_reservation_pass(reservation_id=reservation_id)


@shared_task(**_MAIL_RETRY)
def send_reservation_moved(*, reservation_id: int, moved_from: str, reason: str) -> None:
    emails.send_reservation_moved(
        reservation_id=reservation_id, moved_from=moved_from, reason=reason
    )


@shared_task(**_MAIL_RETRY)
def send_reservation_displaced(*, reservation_id: int, reason: str) -> None:
    emails.send_reservation_displaced(reservation_id=reservation_id, reason=reason)


@shared_task(**_MAIL_RETRY)
def send_reservation_extended(*, reservation_id: int, extension_id: int) -> None:
    emails.send_reservation_extended(reservation_id=reservation_id, extension_id=extension_id)


@shared_task
def dispatch_webhooks() -> int:
    """New reservation events → partner webhook deliveries, sent at once."""
    created = webhook_events_dispatch()
    if created:
        send_webhooks.delay()
    return created


@shared_task(**_MAIL_RETRY)
def send_reservation_cancelled(*, reservation_id: int) -> None:
    emails.send_reservation_cancelled(reservation_id=reservation_id)


@shared_task(**_MAIL_RETRY)
def send_reservation_refunded(*, reservation_id: int, amount: int) -> None:
    emails.send_reservation_refunded(reservation_id=reservation_id, amount=amount)


@shared_task(**_MAIL_RETRY)
def send_reservation_receipt(*, reservation_id: int) -> None:
    emails.send_reservation_receipt(reservation_id=reservation_id)


@shared_task(**_MAIL_RETRY)
def send_reservation_reminder(*, reservation_id: int) -> None:
    emails.send_reservation_reminder(reservation_id=reservation_id)
