"""Finishing a sign-up as a driver does: the link in the e-mail, then the button."""

from __future__ import annotations

import re

from django.core import mail
from django.test import Client, TestCase

LINK = re.compile(r"https?://[^/\s]+(/accounts/signup/confirm/[^/\s]+/)")


def confirm_path(to: str) -> str:
    """The path of the sign-up link last e-mailed to `to`."""
    for message in reversed(mail.outbox):
        if message.to == [to] and (found := LINK.search(message.body)):
            return found.group(1)
    raise AssertionError(f"no sign-up link was e-mailed to {to}")


def open_account(to: str, client: Client | None = None) -> Client:
    """Press the button behind the link last e-mailed to `to`: the account opens."""
    client = client or Client()
    response = client.post(confirm_path(to))
    assert response.status_code == 302, response.content
    return client


def committed():
    """Run the on-commit callbacks (queued e-mails) of what happens inside, as a
    real commit would; a test's transaction otherwise holds them back."""
    return TestCase.captureOnCommitCallbacks(execute=True)
