"""E-mails about accounts, queued for the worker once the change has committed
(a rolled-back sign-up mails no one), as reservations/notifications.py does.
Tasks are named, not imported: parking/tasks.py calls parking/emails.py."""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction

log = logging.getLogger(__name__)

SEND_SIGNUP_LINK = "parking.tasks.send_signup_link"
SEND_SIGNUP_EXISTING = "parking.tasks.send_signup_existing"
SEND_EMAIL = "parking.tasks.send_email"


def _queue(task_name: str, *, after_commit: bool = True, **kwargs: object) -> None:
    def send() -> None:
        try:
            if task_name not in current_app.tasks:
                # Outside the worker, task modules are discovered lazily.
                current_app.loader.import_default_modules()
            current_app.tasks[task_name].delay(**kwargs)
        except Exception:  # the broker is down: the answer was given, the e-mail is lost
            # Ids only: an e-mail's body may hold a password reset link.
            ids = {name: value for name, value in kwargs.items() if isinstance(value, int)}
            log.exception("Could not queue %s for %s", task_name, ids)

    if after_commit:
        transaction.on_commit(send)
    else:
        send()


def signup_link_queue(*, signup_id: int) -> None:
    """The link that finishes a sign-up, to the address signed up with."""
    _queue(SEND_SIGNUP_LINK, signup_id=signup_id)


def signup_existing_queue(*, user_id: int) -> None:
    """'Someone tried to sign up with your address': log in or reset your password."""
    _queue(SEND_SIGNUP_EXISTING, user_id=user_id)


def email_queue(*, subject: str, body: str, to: str) -> None:
    """An e-mail already written (a password reset link), queued at once: it
    waits on no commit. The worker sends it, so the answer takes as long whether
    an e-mail goes out or not."""
    _queue(SEND_EMAIL, after_commit=False, subject=subject, body=body, to=to)
