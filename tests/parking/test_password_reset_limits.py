"""Password reset links are rate limited per e-mail address (so nobody can flood
an inbox) and per client (so nobody can spray addresses), and the answer still
never tells whether an address has an account."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client

from tests.conftest import NOW
from tests.factories import UserFactory
from tests.parking.signup_links import committed

pytestmark = pytest.mark.django_db

RESET = "/accounts/password-reset/"
SENT = "/accounts/password-reset/sent/"


def ask(email: str, **extra):
    return Client().post(RESET, {"email": email}, **extra)


def mails_to(address: str) -> list:
    return [message for message in mail.outbox if message.to == [address]]


def test_reset_links_to_one_address_stop_at_its_rate_and_the_answer_stays_the_same(settings):
    settings.THROTTLE_ACCOUNT_EMAIL_RATE = "2/hour"
    UserFactory(email="ada@example.com")

    answers = [ask("ada@example.com", REMOTE_ADDR=f"198.51.100.{n}") for n in range(1, 5)]

    assert {(a.status_code, a["Location"]) for a in answers} == {(302, SENT)}
    assert len(mails_to("ada@example.com")) == 2


def test_over_the_limit_an_unknown_address_is_answered_as_a_known_one(settings):
    settings.THROTTLE_ACCOUNT_EMAIL_RATE = "1/hour"
    UserFactory(email="ada@example.com")
    for address in ("ada@example.com", "nobody@example.com"):
        ask(address, REMOTE_ADDR="198.51.100.1")

    known = ask("ada@example.com", REMOTE_ADDR="198.51.100.2")
    unknown = ask("nobody@example.com", REMOTE_ADDR="198.51.100.3")

    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    assert len(mail.outbox) == 1


def test_the_address_limit_ignores_how_the_address_is_written(settings):
    settings.THROTTLE_ACCOUNT_EMAIL_RATE = "1/hour"
    UserFactory(email="ada@example.com")

    ask("ada@example.com", REMOTE_ADDR="198.51.100.1")
    ask("ADA@Example.com", REMOTE_ADDR="198.51.100.2")

    assert len(mail.outbox) == 1


def test_the_address_limit_opens_again_in_the_next_hour(settings):
    settings.THROTTLE_ACCOUNT_EMAIL_RATE = "1/hour"
    UserFactory(email="ada@example.com")
    with time_machine.travel(NOW, tick=False) as clock:
        ask("ada@example.com", REMOTE_ADDR="198.51.100.1")
        ask("ada@example.com", REMOTE_ADDR="198.51.100.2")
        clock.shift(timedelta(hours=1))
        ask("ada@example.com", REMOTE_ADDR="198.51.100.3")

    assert len(mails_to("ada@example.com")) == 2


def test_sign_ups_and_resets_count_together_for_one_address(settings):
    settings.THROTTLE_ACCOUNT_EMAIL_RATE = "2/hour"
    UserFactory(email="ada@example.com")
    with committed():
        Client().post(
            "/accounts/signup/", {"email": "ada@example.com", "password": "a long passphrase"}
        )

    ask("ada@example.com", REMOTE_ADDR="198.51.100.1")
    ask("ada@example.com", REMOTE_ADDR="198.51.100.2")

    assert [m.subject for m in mails_to("ada@example.com")] == [
        "Someone tried to sign up with your e-mail address",
        "Reset your ParkSpot password",
    ]


def test_resets_beyond_the_rate_from_one_client_are_429_whatever_the_address(settings):
    settings.THROTTLE_PASSWORD_RESET_RATE = "3/hour"
    UserFactory(email="ada@example.com")
    with time_machine.travel(NOW, tick=False) as clock:
        for n in range(3):
            assert ask(f"someone{n}@example.com").status_code == 302

        known = ask("ada@example.com")
        unknown = ask("nobody@example.com", HTTP_X_FORWARDED_FOR="10.9.9.9")
        elsewhere = ask("ada@example.com", REMOTE_ADDR="203.0.113.9")
        clock.shift(timedelta(hours=1))
        later = ask("ada@example.com")

    for refused in (known, unknown):
        assert refused.status_code == 429
        assert refused["Retry-After"] == "3600"
        assert "Too many password reset links were asked for from this network" in refused.text
        assert "Try again in 60 minutes." in refused.text
    assert known.text == unknown.text
    assert elsewhere["Location"] == SENT
    assert later["Location"] == SENT
    assert len(mails_to("ada@example.com")) == 2  # elsewhere, later


def test_a_malformed_address_is_explained_and_counts_nothing(settings, client):
    settings.THROTTLE_PASSWORD_RESET_RATE = "1/hour"

    bad = client.post(RESET, {"email": "not an address"})
    good = client.post(RESET, {"email": "nobody@example.com"})

    assert bad.status_code == 200
    assert "Enter a valid email address." in bad.text
    assert good["Location"] == SENT
