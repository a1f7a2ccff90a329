"""E-mails about accounts, sent by the worker. Each only calls parking/emails.py."""

from __future__ import annotations

from celery import shared_task

from parking import emails

_MAIL_RETRY = {
    "autoretry_for": (OSError,),  # SMTP trouble: try again later
    "retry_backoff": 30,
    "retry_backoff_max": 3600,
    "max_retries": 8,
}


@shared_task(**_MAIL_RETRY)
def send_signup_link(*, signup_id: int) -> None:
    emails.send_signup_link(signup_id=signup_id)


@shared_task(**_MAIL_RETRY)
def send_signup_existing(*, user_id: int) -> None:
    emails.send_signup_existing(user_id=user_id)


@shared_task(**_MAIL_RETRY)
def send_email(*, subject: str, body: str, to: str) -> None:
    emails.send_written(subject=subject, body=body, to=to)
