"""Telling drivers what happened to their reservation, by e-mail, from the worker.

Services call these inside their transaction; the e-mail is queued only once
the change has committed, so a rolled-back change never mails anyone. Tasks are
named, not imported: reservations/tasks.py calls the services, and the services
must not import it back.
"""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction

log = logging.getLogger(__name__)

SEND_PASS = "reservations.tasks.send_reservation_pass"  # noqa: S105  (a task name)
SEND_MOVED = "reservations.tasks.send_reservation_moved"
SEND_DISPLACED = "reservations.tasks.send_reservation_displaced"
SEND_EXTENDED = "reservations.tasks.send_reservation_extended"
SEND_CANCELLED = "reservations.tasks.send_reservation_cancelled"
SEND_REFUNDED = "reservations.tasks.send_reservation_refunded"
SEND_RECEIPT = "reservations.tasks.send_reservation_receipt"
SEND_REMINDER = "reservations.tasks.send_reservation_reminder"


def _queue(task_name: str, **kwargs: object) -> None:
    def send() -> None:
        try:
            if task_name not in current_app.tasks:
                # Outside the worker, task modules are discovered lazily.
                current_app.loader.import_default_modules()
            current_app.tasks[task_name].delay(**kwargs)
        except Exception:  # the broker is down: the change stands, the page shows it
            log.exception("Could not queue %s for %s", task_name, kwargs)

    transaction.on_commit(send)


def pass_queue(*, reservation_id: int) -> None:
    """The pass (code, QR code, spot, times), once a reservation is confirmed."""
    _queue(SEND_PASS, reservation_id=reservation_id)


def moved_queue(*, reservation_id: int, moved_from: str, reason: str) -> None:
    """The new spot, when a reservation had to move (its spot is occupied or out of service)."""
    _queue(SEND_MOVED, reservation_id=reservation_id, moved_from=moved_from, reason=reason)


def displaced_queue(*, reservation_id: int, reason: str) -> None:
    """A reservation cancelled because no spot was left for it, with a full refund."""
    _queue(SEND_DISPLACED, reservation_id=reservation_id, reason=reason)


def extended_queue(*, reservation_id: int, extension_id: int) -> None:
    """The new end and what the extra time costs, once an extension is applied."""
    _queue(SEND_EXTENDED, reservation_id=reservation_id, extension_id=extension_id)


def cancelled_queue(*, reservation_id: int) -> None:
    """The driver's cancellation: what it cost, and what is given back."""
    _queue(SEND_CANCELLED, reservation_id=reservation_id)


def refunded_queue(*, reservation_id: int, amount: int) -> None:
    """Money given back by the lot's staff."""
    _queue(SEND_REFUNDED, reservation_id=reservation_id, amount=amount)


def receipt_queue(*, reservation_id: int) -> None:
    """The receipt, once a reservation is settled (queued once: services/notices.py)."""
    _queue(SEND_RECEIPT, reservation_id=reservation_id)


def reminder_queue(*, reservation_id: int) -> None:
    """A reminder before the start (queued once: services/notices.py)."""
    _queue(SEND_REMINDER, reservation_id=reservation_id)
