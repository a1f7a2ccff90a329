"""API tokens end: after their lifetime, when their driver revokes one (API or
account page), and all at once when the password changes or is reset, which
also ends the account's other sessions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from parking.models import ApiToken
from tests.conftest import NOW
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough passphrase"
NEW_PASSWORD = "another long passphrase"
TOKEN = "/api/v1/auth/token"
RESERVATIONS = "/api/v1/reservations"


@pytest.fixture
def ada():
    return UserFactory(email="ada@example.com", password=PASSWORD)


def new_token(email: str = "ada@example.com", password: str = PASSWORD) -> dict:
    response = APIClient().post(TOKEN, {"email": email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def works(token: str) -> bool:
    return bearer(token).get(RESERVATIONS).status_code == 200


def web_client(email: str = "ada@example.com", password: str = PASSWORD) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"username": email, "password": password})
    assert response.status_code == 302
    return client


def logged_in(client: Client) -> bool:
    return client.get("/account/").status_code == 200


# --- lifetime ------------------------------------------------------------------------------


def test_a_token_stops_working_after_30_days_with_401_token_expired(ada):
    with time_machine.travel(NOW, tick=False) as clock:
        answer = new_token()
        assert answer["expires_at"] == "2026-04-03T10:00:00Z"
        clock.shift(timedelta(days=30) - timedelta(seconds=1))
        assert works(answer["token"])
        clock.shift(timedelta(seconds=1))

        response = bearer(answer["token"]).get(RESERVATIONS)

    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "token_expired"
    assert "POST /api/v1/auth/token" in body["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    # A new token works again.
    assert works(new_token()["token"])


def test_the_lifetime_is_the_api_token_lifetime_days_setting(ada, settings):
    settings.API_TOKEN_LIFETIME_DAYS = 2
    with time_machine.travel(NOW, tick=False) as clock:
        answer = new_token()
        assert answer["expires_at"] == "2026-03-06T10:00:00Z"
        clock.shift(timedelta(days=2))

        assert bearer(answer["token"]).get(RESERVATIONS).json()["code"] == "token_expired"


def test_asking_for_a_token_forgets_the_drivers_expired_ones(ada):
    with time_machine.travel(NOW, tick=False) as clock:
        new_token()
        clock.shift(timedelta(days=31))
        new_token()

        assert ApiToken.objects.filter(user=ada).count() == 1


def test_when_a_token_was_last_used_is_kept_to_within_five_minutes(ada):
    with time_machine.travel(NOW, tick=False) as clock:
        token = new_token()["token"]
        assert ApiToken.objects.get().last_used_at is None
        works(token)
        assert ApiToken.objects.get().last_used_at == NOW
        clock.shift(timedelta(minutes=4))
        works(token)
        assert ApiToken.objects.get().last_used_at == NOW  # not written again so soon
        clock.shift(timedelta(minutes=2))
        works(token)
        assert ApiToken.objects.get().last_used_at == NOW + timedelta(minutes=6)


# --- DELETE /api/v1/auth/token -------------------------------------------------------------


def test_delete_revokes_the_token_it_is_made_with_and_no_other(ada):
    first, second = new_token()["token"], new_token()["token"]

    response = bearer(first).delete(TOKEN)

    assert response.status_code == 204
    assert response.content == b""
    gone = bearer(first).get(RESERVATIONS)
    assert gone.status_code == 401
    assert gone.json()["code"] == "authentication_failed"
    assert works(second)


def test_delete_without_a_token_is_401_not_authenticated(db):
    response = APIClient().delete(TOKEN)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_delete_twice_is_401_the_second_time(ada):
    token = new_token()["token"]
    assert bearer(token).delete(TOKEN).status_code == 204

    response = bearer(token).delete(TOKEN)

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_asking_for_a_token_ignores_a_stale_authorization_header(ada):
    client = bearer("no-longer-valid")

    response = client.post(TOKEN, {"email": "ada@example.com", "password": PASSWORD}, format="json")

    assert response.status_code == 200


# --- a new password ends every token and every other session -------------------------------


def test_changing_the_password_revokes_every_token_and_logs_out_everywhere_else(ada):
    tokens = [new_token()["token"], new_token()["token"]]
    here, elsewhere = web_client(), web_client()

    response = here.post(
        "/account/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )

    assert "Your password is changed. You are logged out everywhere else" in response.text
    assert not any(works(token) for token in tokens)
    assert logged_in(here)
    assert not logged_in(elsewhere)
    assert works(new_token(password=NEW_PASSWORD)["token"])


def test_resetting_the_password_revokes_every_token_and_logs_out_every_session(ada):
    token = new_token()["token"]
    session = web_client()
    visitor = Client()
    visitor.post("/accounts/password-reset/", {"email": "ada@example.com"})
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    form = visitor.get(link, follow=True)

    visitor.post(
        form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )

    assert not works(token)
    assert not logged_in(session)
    assert works(new_token(password=NEW_PASSWORD)["token"])


def test_staff_setting_a_users_password_in_the_admin_revokes_the_users_tokens(ada):
    token = new_token()["token"]
    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = staff.post(
        f"/admin/parking/user/{ada.pk}/password/",
        {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    assert response.status_code == 302, response.content
    assert not works(token)
    assert works(new_token(password=NEW_PASSWORD)["token"])


def test_someone_elses_password_change_leaves_my_tokens_alone(ada):
    mine = new_token()["token"]
    UserFactory(email="bob@example.com", password=PASSWORD)
    bob = web_client("bob@example.com")

    bob.post(
        "/account/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert works(mine)


# --- the account page ------------------------------------------------------------------------


def test_the_account_page_lists_the_tokens_that_still_work(ada, client):
    with time_machine.travel(NOW, tick=False) as clock:
        old = new_token()["token"]
        clock.shift(timedelta(days=20))
        current = new_token()["token"]
        clock.shift(timedelta(hours=1))
        works(current)
        clock.shift(timedelta(days=11))  # the old token has expired
        UserFactory(email="bob@example.com", password=PASSWORD)
        bobs = new_token("bob@example.com")["token"]
        client.force_login(ada)

        html = client.get("/account/").content.decode()

    assert f"{current[:8]}…" in html
    assert "24 Mar 2026, 10:00 UTC" in html  # created
    assert "24 Mar 2026, 11:00 UTC" in html  # last used
    assert "23 Apr 2026, 10:00 UTC" in html  # expires
    assert f"{old[:8]}…" not in html
    assert f"{bobs[:8]}…" not in html
    assert "Revoke token" in html


def test_the_account_page_says_when_no_app_has_a_token(ada, client):
    client.force_login(ada)

    assert "No app is logged in with a token." in client.get("/account/").content.decode()


def test_revoking_a_token_on_the_account_page_stops_it(ada, client):
    kept, revoked = new_token()["token"], new_token()["token"]
    client.force_login(ada)
    token = ApiToken.objects.get(prefix=revoked[:8])

    response = client.post(f"/account/tokens/{token.pk}/revoke/", follow=True)

    assert "The token is revoked: the app using it must log in again." in response.text
    assert f"{revoked[:8]}…" not in response.text
    assert not works(revoked)
    assert works(kept)


def test_someone_elses_token_cannot_be_revoked_from_my_account_page(ada, client):
    UserFactory(email="bob@example.com", password=PASSWORD)
    bobs = new_token("bob@example.com")["token"]
    client.force_login(ada)

    response = client.post(f"/account/tokens/{ApiToken.objects.get().pk}/revoke/")

    assert response.status_code == 404
    assert works(bobs)


def test_revoking_takes_a_post_with_the_csrf_token(ada):
    token = new_token()["token"]
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(ada)
    url = f"/account/tokens/{ApiToken.objects.get().pk}/revoke/"

    assert browser.get(url).status_code == 405
    assert browser.post(url).status_code == 403
    assert works(token)
    page = browser.get("/account/").content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert browser.post(url, {"csrfmiddlewaretoken": csrf}).status_code == 302
    assert not works(token)


def test_visitors_are_sent_to_log_in_to_revoke(ada, client):
    new_token()
    response = client.post(f"/account/tokens/{ApiToken.objects.get().pk}/revoke/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert ApiToken.objects.exists()
