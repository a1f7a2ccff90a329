"""Accounts on the website: sign up, log in and out, reset a password, and the
driver's vehicles."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.http import HttpRequest
from django.test import Client

from parking.models import SignupRequest, User, Vehicle
from parking.services import vehicle_add
from tests.factories import UserFactory
from tests.parking.signup_links import confirm_path

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough passphrase"


def csrf_token(client: Client, url: str) -> str:
    html = client.get(url).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


class TestSignUp:
    def test_emails_a_link_that_opens_the_account_logs_in_and_goes_on(
        self, client, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/accounts/signup/",
                {
                    "email": "New.Driver@Example.com",
                    "password": PASSWORD,
                    "full_name": "Nia Driver",
                    "next": "/lots/paris/",
                },
                follow=True,
            )
        assert "We have sent a message to <strong>new.driver@example.com</strong>" in (
            response.text
        )
        assert not User.objects.exists()  # nothing is opened before the link
        assert mail.outbox[0].subject == "Confirm your ParkSpot account"

        response = client.post(confirm_path("new.driver@example.com"))

        assert response.status_code == 302
        assert response["Location"] == "/lots/paris/"
        user = User.objects.get()
        assert user.email == "new.driver@example.com"
        assert user.full_name == "Nia Driver"
        assert user.check_password(PASSWORD)
        assert client.get("/account/").status_code == 200  # logged in

    def test_never_goes_to_another_site(self, client, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            client.post(
                "/accounts/signup/",
                {"email": "a@example.com", "password": PASSWORD, "next": "https://evil.example/"},
            )
        response = client.post(confirm_path("a@example.com"))
        assert response["Location"] == "/"

    @pytest.mark.parametrize(
        ("target", "goes_to"),
        [
            ("/reservations/", "/reservations/"),
            ("-1", "/"),  # redirect() looked "-1" up as a URL name: NoReverseMatch, 500
            ("a\x00b", "/"),
            ("2026-03-04", "/"),
            ("account", "/"),
            ("//evil.example", "/"),
        ],
    )
    def test_a_signed_in_driver_is_sent_on_from_sign_up_only_to_a_path_here(
        self, client, driver, target, goes_to
    ):
        client.force_login(driver)

        response = client.get("/accounts/signup/", {"next": target})

        assert response.status_code == 302
        assert response["Location"] == goes_to

    def test_a_weak_password_is_explained_beside_it(self, client):
        response = client.post(
            "/accounts/signup/", {"email": "a@example.com", "password": "12345678"}
        )
        html = response.content.decode()
        assert response.status_code == 400
        assert 'id="id_password_errors"' in html
        assert "too common" in html
        assert not User.objects.exists()

    def test_a_taken_address_is_answered_as_a_new_one_and_its_owner_told(
        self, client, django_capture_on_commit_callbacks
    ):
        """The reported bug: "An account with this e-mail address already exists."
        told anyone that the address had an account."""
        UserFactory(email="taken@example.com", password=PASSWORD)
        with django_capture_on_commit_callbacks(execute=True):
            fresh = client.post(
                "/accounts/signup/", {"email": "free@example.com", "password": PASSWORD}
            )
            taken = client.post(
                "/accounts/signup/", {"email": "TAKEN@example.com", "password": "other passphrase"}
            )
        assert (taken.status_code, taken["Location"]) == (fresh.status_code, fresh["Location"])
        told = next(message for message in mail.outbox if message.to == ["taken@example.com"])
        assert "log in" in told.body
        assert User.objects.get(email="taken@example.com").check_password(PASSWORD)

    def test_fields_are_labelled(self, client):
        html = client.get("/accounts/signup/").content.decode()
        for field, label in (("email", "E-mail address"), ("password", "Password")):
            assert f'<label for="id_{field}">{label}</label>' in html

    def test_is_protected_against_cross_site_requests(self):
        browser = Client(enforce_csrf_checks=True)
        data = {"email": "a@example.com", "password": PASSWORD}
        assert browser.post("/accounts/signup/", data).status_code == 403
        token = csrf_token(browser, "/accounts/signup/")
        response = browser.post("/accounts/signup/", {**data, "csrfmiddlewaretoken": token})
        assert response.status_code == 302
        assert SignupRequest.objects.filter(email="a@example.com").exists()


class TestLogInAndOut:
    def test_logs_in_with_the_email_address_in_any_case(self, client):
        UserFactory(email="driver@example.com", password=PASSWORD)
        response = client.post(
            "/accounts/login/",
            {"username": "Driver@Example.com", "password": PASSWORD, "next": "/reservations/"},
        )
        assert response.status_code == 302
        assert response["Location"] == "/reservations/"

    def test_a_wrong_password_says_so(self, client):
        UserFactory(email="driver@example.com", password=PASSWORD)
        response = client.post(
            "/accounts/login/", {"username": "driver@example.com", "password": "nope"}
        )
        assert response.status_code == 200
        assert "do not match an account" in response.content.decode()

    def test_log_out_is_a_post_and_says_goodbye(self, client, driver):
        client.force_login(driver)
        assert "Log out" in client.get("/").content.decode()
        response = client.post("/accounts/logout/", follow=True)
        assert "You are logged out." in response.content.decode()
        assert client.get("/account/").status_code == 302

    def test_pages_for_drivers_send_visitors_to_log_in(self, client):
        for url in ("/account/", "/reservations/"):
            response = client.get(url)
            assert response.status_code == 302
            assert response["Location"] == f"/accounts/login/?next={url}"

    def test_login_is_protected_against_cross_site_requests(self):
        UserFactory(email="driver@example.com", password=PASSWORD)
        browser = Client(enforce_csrf_checks=True)
        data = {"username": "driver@example.com", "password": PASSWORD}
        assert browser.post("/accounts/login/", data).status_code == 403


class TestPasswordReset:
    def test_emails_a_link_that_sets_a_new_password(self, client):
        UserFactory(email="driver@example.com", password=PASSWORD)
        response = client.post("/accounts/password-reset/", {"email": "driver@example.com"})
        assert response["Location"] == "/accounts/password-reset/sent/"
        assert len(mail.outbox) == 1
        message = mail.outbox[0]
        assert message.to == ["driver@example.com"]
        assert message.subject == "Reset your ParkSpot password"
        link = re.search(r"http://testserver(/accounts/reset/\S+/)", message.body).group(1)

        form = client.get(link, follow=True)
        assert "Choose a new password" in form.content.decode()
        new = "another long passphrase"
        done = client.post(
            form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}, follow=True
        )
        assert "Your password is changed" in done.content.decode()
        assert client.login(request=HttpRequest(), username="driver@example.com", password=new)

    def test_says_the_same_for_unknown_addresses(self, client):
        response = client.post("/accounts/password-reset/", {"email": "nobody@example.com"})
        assert response["Location"] == "/accounts/password-reset/sent/"
        assert mail.outbox == []

    def test_a_used_or_bad_link_says_so(self, client):
        html = client.get("/accounts/reset/MQ/bad-token/").content.decode()
        assert "This link does not work" in html

    def test_change_password_from_the_account(self, client, driver):
        client.force_login(driver)
        new = "another long passphrase"
        response = client.post(
            "/account/password/",
            {
                "old_password": "correct horse battery",
                "new_password1": new,
                "new_password2": new,
            },
            follow=True,
        )
        assert "Your password is changed." in response.content.decode()
        driver.refresh_from_db()
        assert driver.check_password(new)


class TestVehicles:
    @pytest.fixture
    def signed_in(self, client, driver):
        client.force_login(driver)
        return client

    def test_empty_account_invites_to_add_one(self, signed_in):
        assert "No vehicles yet." in signed_in.get("/account/").content.decode()

    def test_add_edit_and_remove(self, signed_in, driver):
        response = signed_in.post(
            "/account/", {"plate": "ab-123 cd", "vehicle_type": "car", "nickname": "Blue one"}
        )
        assert response["Location"] == "/account/"
        vehicle = Vehicle.objects.get(owner=driver)
        assert (vehicle.plate, vehicle.vehicle_type, vehicle.nickname) == (
            "AB123CD",
            "car",
            "Blue one",
        )
        html = signed_in.get("/account/").content.decode()
        assert "AB123CD is added to your vehicles." in html
        assert f"/account/vehicles/{vehicle.pk}/" in html

        response = signed_in.post(
            f"/account/vehicles/{vehicle.pk}/",
            {"plate": "XY 99", "vehicle_type": "van", "nickname": ""},
        )
        assert response["Location"] == "/account/"
        vehicle.refresh_from_db()
        assert (vehicle.plate, vehicle.vehicle_type, vehicle.nickname) == ("XY99", "van", "")

        confirm = signed_in.get(f"/account/vehicles/{vehicle.pk}/remove/").content.decode()
        assert "Remove this vehicle?" in confirm
        signed_in.post(f"/account/vehicles/{vehicle.pk}/remove/")
        assert not Vehicle.objects.filter(owner=driver).exists()

    def test_a_plate_twice_is_explained_beside_it(self, signed_in, driver):
        vehicle_add(owner=driver, plate="AB1", vehicle_type="car")
        other = vehicle_add(owner=driver, plate="CD2", vehicle_type="car")
        response = signed_in.post("/account/", {"plate": "ab 1", "vehicle_type": "van"})
        assert response.status_code == 400
        assert "You already have this vehicle." in response.content.decode()
        response = signed_in.post(
            f"/account/vehicles/{other.pk}/", {"plate": "AB-1", "vehicle_type": "car"}
        )
        assert response.status_code == 400
        assert "You already have a vehicle with this plate." in response.content.decode()

    def test_someone_elses_vehicle_is_not_found(self, signed_in):
        theirs = vehicle_add(owner=UserFactory(), plate="ZZ1", vehicle_type="car")
        assert signed_in.get(f"/account/vehicles/{theirs.pk}/").status_code == 404
        assert signed_in.post(f"/account/vehicles/{theirs.pk}/remove/").status_code == 404
        assert Vehicle.objects.filter(pk=theirs.pk).exists()

    def test_adding_is_protected_against_cross_site_requests(self, driver):
        browser = Client(enforce_csrf_checks=True)
        browser.force_login(driver)
        response = browser.post("/account/", {"plate": "AB1", "vehicle_type": "car"})
        assert response.status_code == 403
        assert not Vehicle.objects.exists()
