"""Password guessing, as an attacker tries it: every door that checks a password
(the website's log-in, the admin's, POST /api/v1/auth/token) stops after a few
failures per account and per client address, for a while, even for the right
password, and says so in words (django-axes, parking/lockout.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.cache import caches
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough passphrase"
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
TOKEN = "/api/v1/auth/token"
LOCKED = "Too many log-in attempts failed for this account or from this network"


@pytest.fixture
def limit_of_three(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_COOLOFF_MINUTES = 15


@pytest.fixture
def counts_in_memory(settings):
    """Counts in a local-memory cache, whose entries lapse on the test's clock
    (Redis's would lapse only in real time)."""
    settings.CACHES = {
        **settings.CACHES,
        "login-test": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "login-test",
        },
    }
    settings.AXES_CACHE = "login-test"
    caches["login-test"].clear()


def web_login(client, email: str, password: str, **extra):
    return client.post(LOGIN, {"username": email, "password": password}, **extra)


def token_login(email: str, password: str, **extra):
    return APIClient().post(TOKEN, {"email": email, "password": password}, format="json", **extra)


def logged_in(client) -> bool:
    return client.get("/account/").status_code == 200


# --- the website -----------------------------------------------------------------------


def test_forty_guesses_then_the_right_password_no_longer_logs_in(client):
    UserFactory(email="driver@example.com", password=PASSWORD)

    statuses = [
        web_login(client, "driver@example.com", f"guess {n}").status_code for n in range(40)
    ]
    response = web_login(client, "driver@example.com", PASSWORD)

    assert statuses[:9] == [200] * 9  # "do not match", nine times
    assert set(statuses[9:]) == {429}  # the tenth failure locks (LOGIN_FAILURE_LIMIT=10)
    assert response.status_code == 429
    assert not logged_in(client)


def test_a_locked_out_website_login_says_what_happened_and_when_to_try_again(
    client, limit_of_three
):
    UserFactory(email="driver@example.com", password=PASSWORD)
    for n in range(2):
        assert "do not match an account" in web_login(client, "driver@example.com", f"x{n}").text

    response = web_login(client, "driver@example.com", "third guess")

    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    html = response.content.decode()
    assert LOCKED in html
    assert "paused for 15 minutes" in html
    assert 'href="/accounts/password-reset/"' in html


def test_the_account_is_locked_whatever_address_the_guesses_come_from(client, limit_of_three):
    UserFactory(email="driver@example.com", password=PASSWORD)
    for n in range(3):
        web_login(client, "driver@example.com", "wrong", REMOTE_ADDR=f"198.51.100.{n + 1}")

    response = web_login(client, "driver@example.com", PASSWORD, REMOTE_ADDR="203.0.113.50")

    assert response.status_code == 429
    assert not logged_in(client)


def test_writing_the_address_in_another_case_counts_for_the_same_account(client, limit_of_three):
    UserFactory(email="driver@example.com", password=PASSWORD)
    for n, spelling in enumerate(
        ["Driver@example.com", "DRIVER@EXAMPLE.COM", " driver@Example.com"]
    ):
        web_login(client, spelling, "wrong", REMOTE_ADDR=f"198.51.100.{n + 1}")

    assert web_login(client, "driver@example.com", PASSWORD).status_code == 429


def test_one_address_guessing_many_accounts_is_locked_out_for_every_account(client, limit_of_three):
    UserFactory(email="victim@example.com", password=PASSWORD)
    for n in range(3):
        web_login(client, f"someone{n}@example.com", "password1", REMOTE_ADDR="198.51.100.7")

    locked = web_login(client, "victim@example.com", PASSWORD, REMOTE_ADDR="198.51.100.7")
    elsewhere = web_login(client, "victim@example.com", PASSWORD, REMOTE_ADDR="203.0.113.50")

    assert locked.status_code == 429
    assert elsewhere.status_code == 302  # the account itself is not locked


def test_a_forged_x_forwarded_for_does_not_start_a_new_count(client, limit_of_three):
    UserFactory(email="victim@example.com", password=PASSWORD)
    for n in range(3):
        web_login(
            client, f"someone{n}@example.com", "password1", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}"
        )

    response = web_login(client, "victim@example.com", PASSWORD, HTTP_X_FORWARDED_FOR="10.0.0.99")

    assert response.status_code == 429


def test_behind_a_trusted_proxy_each_client_it_forwards_has_its_own_count(
    client, settings, limit_of_three
):
    settings.TRUSTED_PROXIES = 1
    UserFactory(email="driver@example.com", password=PASSWORD)
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for n in range(3):
        web_login(
            client,
            f"someone{n}@example.com",
            "password1",
            HTTP_X_FORWARDED_FOR="198.51.100.7",
            **proxy,
        )

    attacker = web_login(
        client, "driver@example.com", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy
    )
    neighbour = web_login(
        client, "driver@example.com", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.9", **proxy
    )

    assert attacker.status_code == 429
    assert neighbour.status_code == 302


def test_a_successful_login_clears_the_failures_before_it(client, limit_of_three):
    UserFactory(email="driver@example.com", password=PASSWORD)
    web_login(client, "driver@example.com", "typo one")
    web_login(client, "driver@example.com", "typo two")
    assert web_login(client, "driver@example.com", PASSWORD).status_code == 302
    client.post("/accounts/logout/")

    web_login(client, "driver@example.com", "typo three")
    web_login(client, "driver@example.com", "typo four")

    assert web_login(client, "driver@example.com", PASSWORD).status_code == 302


def test_after_the_cool_off_the_right_password_works_again(
    client, limit_of_three, counts_in_memory
):
    UserFactory(email="driver@example.com", password=PASSWORD)
    with time_machine.travel("2026-03-04 10:00Z", tick=False) as clock:
        for n in range(3):
            web_login(client, "driver@example.com", f"guess {n}")
        clock.shift(timedelta(minutes=14))
        assert web_login(client, "driver@example.com", PASSWORD).status_code == 429
        # That try started the cool-off again.
        clock.shift(timedelta(minutes=14))
        assert web_login(client, "driver@example.com", PASSWORD).status_code == 429
        clock.shift(timedelta(minutes=15, seconds=1))

        response = web_login(client, "driver@example.com", PASSWORD)

        assert response.status_code == 302
        assert logged_in(client)


# --- the admin ---------------------------------------------------------------------------


def test_the_admin_login_is_locked_out_too_and_says_so(client, limit_of_three):
    UserFactory(email="staff@example.com", password=PASSWORD, is_staff=True, is_superuser=True)
    for n in range(2):
        response = client.post(
            ADMIN_LOGIN, {"username": "staff@example.com", "password": f"guess {n}"}
        )
        assert response.status_code == 200

    response = client.post(ADMIN_LOGIN, {"username": "staff@example.com", "password": "guess 3"})
    right = client.post(ADMIN_LOGIN, {"username": "staff@example.com", "password": PASSWORD})

    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert "ParkSpot administration" in response.content.decode()
    assert right.status_code == 429
    assert client.get("/admin/").status_code == 302  # still asked to log in


# --- the API -------------------------------------------------------------------------------


def test_the_token_endpoint_answers_429_too_many_login_attempts_with_retry_after(limit_of_three):
    UserFactory(email="driver@example.com", password=PASSWORD)
    for n in range(2):
        assert token_login("driver@example.com", f"guess {n}").status_code == 400

    response = token_login("driver@example.com", "guess 3")
    right = token_login("driver@example.com", PASSWORD)

    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "too_many_login_attempts"
    assert LOCKED in body["detail"]
    assert response["Retry-After"] == "900"
    assert right.status_code == 429
    assert "token" not in right.json()


def test_the_doors_share_one_count_for_an_account(client, limit_of_three):
    UserFactory(email="driver@example.com", password=PASSWORD)
    web_login(client, "driver@example.com", "guess 1", REMOTE_ADDR="198.51.100.1")
    client.post(
        ADMIN_LOGIN,
        {"username": "driver@example.com", "password": "guess 2"},
        REMOTE_ADDR="198.51.100.2",
    )
    token_login("driver@example.com", "guess 3", REMOTE_ADDR="198.51.100.3")

    assert token_login("driver@example.com", PASSWORD).status_code == 429
    assert web_login(client, "driver@example.com", PASSWORD).status_code == 429


def test_a_token_request_that_succeeds_clears_the_failures_before_it(limit_of_three):
    UserFactory(email="driver@example.com", password=PASSWORD)
    token_login("driver@example.com", "typo one")
    token_login("driver@example.com", "typo two")
    assert token_login("driver@example.com", PASSWORD).status_code == 200

    token_login("driver@example.com", "typo three")
    token_login("driver@example.com", "typo four")

    assert token_login("driver@example.com", PASSWORD).status_code == 200


# --- where the counts live ---------------------------------------------------------------


@pytest.mark.redis
def test_the_counts_live_in_redis_where_every_process_sees_them(client, limit_of_three):
    import redis
    from django.conf import settings

    UserFactory(email="driver@example.com", password=PASSWORD)
    for n in range(3):
        web_login(client, "driver@example.com", f"guess {n}")

    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    server = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(server.scan_iter(match=f"{prefix}:*axes-*"))
    assert len(keys) == 2  # one count for the account, one for the address
    assert sorted(int(server.get(key)) for key in keys) == [3, 3]


def test_with_redis_down_a_wrong_password_is_just_wrong_and_the_right_one_works(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.1,
                "SOCKET_TIMEOUT": 0.1,
            },
        }
    }
    UserFactory(email="driver@example.com", password=PASSWORD)

    wrong = web_login(client, "driver@example.com", "wrong")
    wrong_token = token_login("driver@example.com", "wrong")
    right = web_login(client, "driver@example.com", PASSWORD)

    assert wrong.status_code == 200
    assert "do not match an account" in wrong.content.decode()
    assert wrong_token.status_code == 400
    assert right.status_code == 302


def test_an_operator_can_lift_an_accounts_lockout_at_once(client, limit_of_three):
    from django.core.management import call_command

    UserFactory(email="driver@example.com", password=PASSWORD)
    for n in range(3):
        web_login(client, "driver@example.com", f"guess {n}", REMOTE_ADDR=f"198.51.100.{n + 1}")
    assert web_login(client, "driver@example.com", PASSWORD).status_code == 429

    call_command("axes_reset_username", "driver@example.com", stdout=None)

    assert web_login(client, "driver@example.com", PASSWORD).status_code == 302
