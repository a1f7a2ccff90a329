"""Staff sign in to the admin with a password and a code from an authenticator
app when ADMIN_REQUIRE_2FA is on; they set the app up once, themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"


@pytest.fixture
def required(settings):
    settings.ADMIN_REQUIRE_2FA = True


@pytest.fixture
def staff():
    return UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def _admin_login(client: Client, email: str, code: str = "") -> int:
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": email, "password": PASSWORD, "otp_token": code},
    )
    return response.status_code


def test_a_password_alone_no_longer_opens_the_admin(required, staff):
    client = Client()
    assert _admin_login(client, staff.email) == 200  # the form again, asking for a code
    assert client.get("/admin/").status_code == 302
    # A session signed in elsewhere with the password only is not enough either.
    client.force_login(staff)
    assert client.get("/admin/lots/lot/").status_code == 302


def test_staff_set_up_their_app_then_sign_in_with_a_code(required, staff):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        browser = Client()
        browser.force_login(staff)  # the website's password sign-in
        page = browser.get("/admin/two-factor/")
        assert page.status_code == 200
        assert "<svg" in page.content.decode()
        device = TOTPDevice.objects.get(user=staff, confirmed=False)

        wrong = browser.post("/admin/two-factor/", {"code": "000000"})
        assert wrong.status_code == 400
        assert "That code is not right" in wrong.content.decode()

        done = browser.post("/admin/two-factor/", {"code": _code(device)})
        assert (done.status_code, done["Location"]) == (302, "/admin/")
        assert browser.get("/admin/").status_code == 200

        clock.shift(timedelta(seconds=31))  # the next code
        device.refresh_from_db()
        other = Client()
        assert _admin_login(other, staff.email, "123456") == 200  # refused: the form again
        assert other.get("/admin/").status_code == 302
        clock.shift(timedelta(seconds=31))  # django-otp slows down guessing after a miss
        device.refresh_from_db()
        assert _admin_login(other, staff.email, _code(device)) == 302
        assert other.get("/admin/").status_code == 200


def test_drivers_have_no_two_factor_page(required):
    driver = Client()
    driver.force_login(UserFactory())
    assert driver.get("/admin/two-factor/").status_code == 404


def test_without_the_setting_the_admin_asks_for_the_password_only(staff, settings):
    settings.ADMIN_REQUIRE_2FA = False
    client = Client()
    assert _admin_login(client, staff.email) == 302
    assert client.get("/admin/").status_code == 200


def test_the_deploy_check_warns_while_two_factor_is_off():
    env = {k: v for k, v in os.environ.items() if k != "ADMIN_REQUIRE_2FA"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "parkspot.W001" in result.stdout + result.stderr
