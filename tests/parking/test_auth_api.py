"""Account API: register, get a bearer token, use it, and be throttled (DESIGN §6)."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.cache.backends.locmem import LocMemCache
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from tests.factories import UserFactory
from tests.parking.signup_links import open_account

REGISTER = "/api/v1/auth/register"
TOKEN = "/api/v1/auth/token"
RESERVATIONS = "/api/v1/reservations"
STRONG = "correct horse battery staple"

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str | None = None) -> dict:
    """An error as every client sees it: JSON with a code and a human detail."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("code"), str)
    assert body["code"]
    assert isinstance(body.get("detail"), str)
    assert body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body


def register(client, email: str, password: str = STRONG, **extra):
    return client.post(REGISTER, {"email": email, "password": password, **extra}, format="json")


@pytest.fixture
def signed_up(django_capture_on_commit_callbacks):
    """Register through the API and open the account from the link e-mailed."""

    def sign_up(client, email: str, password: str = STRONG, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            response = register(client, email, password, **extra)
        assert response.status_code == 201, response.content
        open_account(response.json()["email"])
        return response

    return sign_up


def get_token(client, email: str, password: str = STRONG):
    return client.post(TOKEN, {"email": email, "password": password}, format="json")


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# --- register ---------------------------------------------------------------------------


def test_register_answers_201_and_the_link_it_emails_opens_the_account(
    api, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = register(api, "  Ada.Lovelace@Example.COM ", full_name="Ada Lovelace")

    assert response.status_code == 201, response.content
    assert response.json()["email"] == "ada.lovelace@example.com"
    assert "Check your e-mail" in response.json()["detail"]
    assert_error(get_token(api, "ada.lovelace@example.com"), 400, "invalid_credentials")
    open_account("ada.lovelace@example.com")
    assert get_token(api, "ada.lovelace@example.com").status_code == 200


def test_register_never_echoes_the_password(api):
    response = register(api, "ada@example.com")

    assert STRONG not in response.content.decode()


@pytest.mark.parametrize("second", ["ada@example.com", "ADA@example.com", "Ada@Example.Com"])
def test_registering_a_taken_email_is_answered_as_a_new_one_whatever_the_case(
    api, second, signed_up, django_capture_on_commit_callbacks
):
    """The reported bug was a 409 email_taken: it told anyone the address had an account."""
    signed_up(api, "ada@example.com")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        fresh = register(api, "nobody@example.com", "another long passphrase")
        taken = register(api, second, "another long passphrase")

    assert (taken.status_code, taken.json()) == (
        fresh.status_code,
        {**fresh.json(), "email": "ada@example.com"},
    )
    told = next(message for message in mail.outbox if message.to == ["ada@example.com"])
    assert told.subject == "Someone tried to sign up with your e-mail address"
    # The first account keeps its password.
    assert get_token(api, "ada@example.com").status_code == 200
    assert_error(get_token(api, "ada@example.com", "another long passphrase"), 400)


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("short", id="too-short"),
        pytest.param("12345678901234", id="all-digits"),
        pytest.param("password123", id="common"),
        pytest.param("ada.lovelace.example", id="like-the-email"),
    ],
)
def test_a_weak_password_is_400_weak_password_on_the_password_field(api, password):
    body = assert_error(register(api, "ada.lovelace@example.com", password), 400, "weak_password")

    assert body["fields"]["password"][0]["code"] == "weak_password"
    assert body["fields"]["password"][0]["detail"]
    # Nothing was created: the address is still free.
    assert register(api, "ada.lovelace@example.com").status_code == 201


@pytest.mark.parametrize(
    "email",
    ["not-an-email", "ada@", "@example.com", "ada lovelace@example.com", "ada@@example.com"],
)
def test_a_malformed_email_is_400_on_the_email_field(api, email):
    body = assert_error(register(api, email), 400)

    assert "email" in body["fields"]
    assert body["code"] == body["fields"]["email"][0]["code"]


def test_register_without_email_or_password_is_400_required_on_each_field(api):
    body = assert_error(api.post(REGISTER, {}, format="json"), 400, "required")

    assert body["fields"]["email"][0]["code"] == "required"
    assert body["fields"]["password"][0]["code"] == "required"


def test_register_with_malformed_json_is_400_malformed_request(api):
    response = api.post(REGISTER, '{"email": "ada@example.com",', content_type="application/json")

    assert_error(response, 400, "malformed_request")


def test_auth_endpoints_need_no_csrf_token():
    UserFactory(email="bob@example.com", password=STRONG)
    client = Client(enforce_csrf_checks=True)

    response = client.post(
        REGISTER,
        {"email": "ada@example.com", "password": STRONG},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    response = client.post(
        TOKEN, {"email": "bob@example.com", "password": STRONG}, content_type="application/json"
    )
    assert response.status_code == 200, response.content


# --- token ----------------------------------------------------------------------------


def test_token_for_the_right_credentials_works_as_a_bearer_token(api, signed_up):
    signed_up(api, "ada@example.com")

    response = get_token(api, "ada@example.com")

    assert response.status_code == 200, response.content
    token = response.json()["token"]
    assert isinstance(token, str)
    assert len(token) >= 32
    listing = bearer(token).get(RESERVATIONS)
    assert listing.status_code == 200, listing.content
    assert listing.json()["results"] == []


def test_token_login_ignores_the_case_of_the_email(api, signed_up):
    signed_up(api, "ada@example.com")

    response = get_token(api, "ADA@Example.com")

    assert response.status_code == 200, response.content
    assert bearer(response.json()["token"]).get(RESERVATIONS).status_code == 200


def test_every_token_request_gives_a_new_token_and_all_of_them_work(api, signed_up):
    signed_up(api, "ada@example.com")

    first = get_token(api, "ada@example.com").json()["token"]
    second = get_token(api, "ada@example.com").json()["token"]

    assert first != second
    assert bearer(first).get(RESERVATIONS).status_code == 200
    assert bearer(second).get(RESERVATIONS).status_code == 200


@pytest.mark.parametrize(
    ("email", "password"),
    [
        pytest.param("ada@example.com", "wrong horse battery staple", id="wrong-password"),
        pytest.param("nobody@example.com", STRONG, id="unknown-email"),
        pytest.param("ada@example.com", "", id="empty-password"),
    ],
)
def test_wrong_credentials_are_400_invalid_credentials_or_a_field_error(api, email, password):
    UserFactory(email="ada@example.com", password=STRONG)

    response = get_token(api, email, password)

    body = assert_error(response, 400)
    if password:
        assert body["code"] == "invalid_credentials"
        assert "token" not in body


def test_a_deactivated_account_gets_no_token_and_its_old_tokens_stop_working(api):
    user = UserFactory(email="ada@example.com", password=STRONG)
    token = get_token(api, "ada@example.com").json()["token"]
    user.is_active = False
    user.save(update_fields=["is_active"])

    assert_error(get_token(api, "ada@example.com"), 400, "invalid_credentials")
    assert_error(bearer(token).get(RESERVATIONS), 401, "authentication_failed")


# --- bearer authentication --------------------------------------------------------------


def test_no_credentials_is_401_not_authenticated_with_a_bearer_challenge(api):
    response = api.get(RESERVATIONS)

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Bearer not-a-real-token", id="unknown-token"),
        pytest.param("Bearer", id="keyword-only"),
        pytest.param("Bearer two parts", id="too-many-parts"),
        pytest.param("bearer not-a-real-token", id="lower-case-keyword"),
        pytest.param("Bearer \xff\xfe", id="non-utf8-token"),
        pytest.param("Bearer " + "x" * 5000, id="huge-token"),
    ],
)
def test_a_bad_bearer_token_is_401_authentication_failed(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(RESERVATIONS)

    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Basic YWRhOnNlY3JldA==", "Token abc", "garbage"])
def test_another_authorization_scheme_is_401_not_authenticated(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    assert_error(client.get(RESERVATIONS), 401, "not_authenticated")


def test_a_token_of_one_user_shows_only_that_users_reservations(api, signed_up):
    signed_up(api, "ada@example.com")
    signed_up(api, "bob@example.com")
    ada = bearer(get_token(api, "ada@example.com").json()["token"])
    bob = bearer(get_token(api, "bob@example.com").json()["token"])

    assert ada.get(RESERVATIONS).json()["results"] == []
    assert bob.get(RESERVATIONS).json()["results"] == []


# --- throttling -----------------------------------------------------------------------


@pytest.fixture
def low_auth_rate(monkeypatch) -> LocMemCache:
    # DRF copies DEFAULT_THROTTLE_RATES onto the class when it is defined, so
    # overriding settings in a test would not reach it: patch the class instead.
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "3/min"})
    # Count in a cache of this test's own: a shared Redis may be flushed by another
    # test process between two requests, which would reset the count.
    counts = LocMemCache("auth-throttle-test", {})
    counts.clear()  # LocMemCache instances of one name share their storage
    monkeypatch.setattr(ScopedRateThrottle, "cache", counts)
    return counts


def test_token_requests_beyond_the_auth_rate_are_429_throttled(api, low_auth_rate):
    register_response = register(api, "ada@example.com")  # 1
    assert register_response.status_code == 201
    assert get_token(api, "ada@example.com", "wrong guess one").status_code == 400  # 2
    assert get_token(api, "ada@example.com", "wrong guess two").status_code == 400  # 3

    response = get_token(api, "ada@example.com")  # 4: even the right password waits

    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


def test_register_is_throttled_too(api, low_auth_rate):
    for n in range(3):
        assert register(api, f"user{n}@example.com").status_code == 201

    assert_error(register(api, "user3@example.com"), 429, "throttled")
    # The throttled request created nothing.
    low_auth_rate.clear()
    assert register(api, "user3@example.com").status_code == 201


def test_the_auth_rate_limit_does_not_throttle_authenticated_api_calls(
    api, signed_up, low_auth_rate
):
    signed_up(api, "ada@example.com")
    client = bearer(get_token(api, "ada@example.com").json()["token"])

    for _ in range(10):
        assert client.get(RESERVATIONS).status_code == 200
