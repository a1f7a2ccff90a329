"""Signing up never tells whether an address has an account: the website and the
API answer the same either way, and the e-mail does the telling (a link that
opens a new account; a note to an existing one). Sign-ups and the e-mails they
send are rate limited."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from parking.models import SignupRequest, User
from tests.conftest import NOW
from tests.factories import UserFactory
from tests.parking.signup_links import committed, confirm_path, open_account

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough passphrase"
SIGNUP = "/accounts/signup/"
REGISTER = "/api/v1/auth/register"


# E-mails are queued when the sign-up commits: committed() runs what the test's
# transaction holds back at the end of each request.


def web_signup(client: Client, email: str, password: str = PASSWORD, **extra):
    with committed():
        return client.post(SIGNUP, {"email": email, "password": password}, follow=True, **extra)


def api_register(email: str, password: str = PASSWORD, **extra):
    with committed():
        return APIClient().post(
            REGISTER, {"email": email, "password": password}, format="json", **extra
        )


def mails_to(address: str) -> list:
    return [message for message in mail.outbox if message.to == [address]]


# --- the same answer ---------------------------------------------------------------------


def test_the_website_answers_the_same_page_whether_the_address_has_an_account_or_not():
    UserFactory(email="taken@example.com", password=PASSWORD)

    taken = web_signup(Client(), "taken@example.com", "some other passphrase")
    free = web_signup(Client(), "free@example.com", "some other passphrase")

    assert taken.status_code == free.status_code == 200
    assert taken.redirect_chain == free.redirect_chain == [("/accounts/signup/sent/", 302)]
    assert taken.text.replace("taken@", "free@") == free.text
    assert "Check your e-mail" in free.text


def test_the_api_answers_the_same_whether_the_address_has_an_account_or_not():
    UserFactory(email="taken@example.com", password=PASSWORD)

    taken = api_register("taken@example.com", "some other passphrase")
    free = api_register("free@example.com", "some other passphrase")

    assert taken.status_code == free.status_code == 201
    assert taken.json() == {**free.json(), "email": "taken@example.com"}


def test_an_existing_account_is_told_by_email_how_to_log_in_and_nothing_changes():
    owner = UserFactory(email="taken@example.com", password=PASSWORD, full_name="Ada")

    web_signup(Client(), "Taken@Example.com", "some other passphrase")

    [message] = mails_to("taken@example.com")
    assert message.subject == "Someone tried to sign up with your e-mail address"
    assert "You already have an account with this address" in message.body
    assert "http://127.0.0.1:8000/accounts/login/" in message.body
    assert "http://127.0.0.1:8000/accounts/password-reset/" in message.body
    assert "/accounts/signup/confirm/" not in message.body
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)
    assert owner.full_name == "Ada"
    assert User.objects.count() == 1
    assert not SignupRequest.objects.exists()


def test_a_new_address_gets_a_link_and_no_account_exists_until_it_is_opened(client):
    web_signup(client, "new@example.com")

    [message] = mails_to("new@example.com")
    assert message.subject == "Confirm your ParkSpot account"
    assert "The link works for 72 hours." in message.body
    assert not User.objects.filter(email="new@example.com").exists()
    login = client.post("/accounts/login/", {"username": "new@example.com", "password": PASSWORD})
    assert "do not match an account" in login.text


# --- the link --------------------------------------------------------------------------------


def test_opening_the_link_shows_a_button_and_only_the_button_opens_the_account():
    web_signup(Client(), "new@example.com")
    browser = Client()

    page = browser.get(confirm_path("new@example.com"))

    assert page.status_code == 200
    assert "Open my account and log in" in page.text
    assert "new@example.com" in page.text
    assert not User.objects.exists()  # a link checker fetching it opens nothing
    welcome = browser.post(confirm_path("new@example.com"), follow=True)
    assert "Welcome to ParkSpot! Your account is ready." in welcome.text
    assert User.objects.get().email == "new@example.com"


def test_the_link_works_once():
    web_signup(Client(), "new@example.com")
    link = confirm_path("new@example.com")
    open_account("new@example.com")

    again = Client().post(link)

    assert again.status_code == 200
    assert "This link does not work" in again.text
    assert User.objects.count() == 1


def test_the_link_stops_working_after_signup_confirm_hours(settings):
    settings.SIGNUP_CONFIRM_HOURS = 2
    with time_machine.travel(NOW, tick=False) as clock:
        web_signup(Client(), "new@example.com")
        clock.shift(timedelta(hours=2, seconds=1))

        page = Client().get(confirm_path("new@example.com"))
        pressed = Client().post(confirm_path("new@example.com"))

    assert "This link does not work" in page.text
    assert "too old" in page.text
    assert "This link does not work" in pressed.text
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "token", ["garbage", "MQ:1tXyZa:abcdefghijklmnopqrstuvwxyz0", "x" * 400, "%00"]
)
def test_a_made_up_link_says_it_does_not_work(client, token):
    for response in (
        client.get(f"{SIGNUP}confirm/{token}/"),
        client.post(f"{SIGNUP}confirm/{token}/"),
    ):
        assert response.status_code == 200
        assert "This link does not work" in response.text
    assert not User.objects.exists()


def test_of_two_signups_for_one_address_the_first_link_opened_wins():
    web_signup(Client(), "new@example.com", "first passphrase here")
    first = confirm_path("new@example.com")
    web_signup(Client(), "new@example.com", "second passphrase here")
    second = confirm_path("new@example.com")
    assert first != second

    Client().post(second)
    late = Client().post(first)

    assert "This link does not work" in late.text
    assert User.objects.get().check_password("second passphrase here")


def test_a_link_for_an_address_that_got_an_account_meanwhile_opens_nothing():
    web_signup(Client(), "new@example.com", "signup passphrase")
    UserFactory(email="new@example.com", password=PASSWORD)  # e.g. made by staff
    browser = Client()

    response = browser.post(confirm_path("new@example.com"), follow=True)

    assert response.redirect_chain[-1][0] == "/accounts/login/"
    assert "This e-mail address already has an account: log in with it." in response.text
    assert User.objects.get().check_password(PASSWORD)
    assert browser.get("/account/").status_code == 302


def test_an_account_opened_through_the_api_gets_tokens_with_its_password():
    api_register("app@example.com")
    open_account("app@example.com")

    response = APIClient().post(
        "/api/v1/auth/token", {"email": "app@example.com", "password": PASSWORD}, format="json"
    )

    assert response.status_code == 200


# --- limits ------------------------------------------------------------------------------------


def test_signups_beyond_the_rate_from_one_address_are_429_with_a_sentence(settings):
    settings.THROTTLE_SIGNUP_RATE = "3/hour"
    with time_machine.travel(NOW, tick=False) as clock:
        for n in range(3):
            assert web_signup(Client(), f"user{n}@example.com").status_code == 200

        refused = Client().post(SIGNUP, {"email": "user3@example.com", "password": PASSWORD})
        elsewhere = web_signup(Client(), "user4@example.com", REMOTE_ADDR="203.0.113.9")
        clock.shift(timedelta(hours=1))
        later = web_signup(Client(), "user5@example.com")

    assert refused.status_code == 429
    assert refused["Retry-After"] == "3600"
    assert "Too many accounts were asked for from this network" in refused.text
    assert "Try again in 60 minutes." in refused.text
    assert not mails_to("user3@example.com")
    assert elsewhere.status_code == 200
    assert later.status_code == 200


def test_the_api_refuses_signups_beyond_the_rate_with_429_too_many_signups(settings):
    settings.THROTTLE_SIGNUP_RATE = "2/hour"
    assert api_register("a@example.com").status_code == 201
    # A header the client writes is not an address (TRUSTED_PROXIES is 0).
    assert api_register("b@example.com", HTTP_X_FORWARDED_FOR="10.1.1.1").status_code == 201

    response = api_register("c@example.com", HTTP_X_FORWARDED_FOR="10.2.2.2")

    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "too_many_signups"
    assert "Too many accounts were asked for from this address" in body["detail"]
    assert 0 < int(response["Retry-After"]) <= 3600
    assert not SignupRequest.objects.filter(email="c@example.com").exists()


def test_the_website_and_the_api_share_the_signup_count(settings):
    settings.THROTTLE_SIGNUP_RATE = "2/hour"
    web_signup(Client(), "a@example.com")
    api_register("b@example.com")

    assert api_register("c@example.com").status_code == 429
    assert Client().post(SIGNUP, {"email": "d@example.com", "password": PASSWORD}).status_code == (
        429
    )


def test_signups_stop_mailing_one_address_beyond_its_rate_and_answer_the_same(settings):
    settings.THROTTLE_ACCOUNT_EMAIL_RATE = "2/hour"
    UserFactory(email="taken@example.com", password=PASSWORD)

    answers = [
        api_register("taken@example.com", REMOTE_ADDR=f"198.51.100.{n}").json() for n in (1, 2, 3)
    ]
    fresh = [api_register("new@example.com", REMOTE_ADDR=f"198.51.100.{n}") for n in (4, 5, 6)]

    assert answers[0] == answers[1] == answers[2]
    assert {response.status_code for response in fresh} == {201}
    assert len(mails_to("taken@example.com")) == 2
    assert len(mails_to("new@example.com")) == 2


def test_a_weak_password_is_still_explained_and_sends_nothing(client):
    response = client.post(SIGNUP, {"email": "new@example.com", "password": "12345678"})

    assert response.status_code == 400
    assert "too common" in response.text
    assert mail.outbox == []
