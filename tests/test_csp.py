"""The Content-Security-Policy header: on the website, the API and the admin, with the
directives the pages need and nothing more; the pay page adds Stripe.js's sources
(from settings), the API docs a nonce and data: images. tests/e2e/test_csp.py
checks in a browser that no page breaks it."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.factories import UserFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

# What every page gets (settings.CONTENT_SECURITY_POLICY).
BASE = {
    "default-src": ["'none'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'"],
    "connect-src": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'self'"],
    "object-src": ["'none'"],
}


def policy(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    assert "Content-Security-Policy-Report-Only" not in response.headers
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in directives, f"{name} twice in {header}"
        directives[name] = sources
    return directives


@pytest.fixture
def signed_in(client, driver):
    client.force_login(driver)
    return client


def test_website_pages_carry_the_policy(client, lot, driver):
    tomorrow = (timezone.now() + timedelta(days=1)).astimezone(lot.tz).date()
    window = f"vehicle_type=car&start={tomorrow}T10:00&end={tomorrow}T12:00"
    visitor = [
        "/",
        f"/search/?city={lot.city}&{window}",
        f"/lots/{lot.slug}/?{window}",
        "/accounts/signup/",
        "/accounts/login/",
        "/accounts/password-reset/",
        "/accounts/password-reset/sent/",
        "/accounts/reset/done/",
        "/no/such/page/",
    ]
    for path in visitor:
        response = client.get(path)
        assert response.status_code in (200, 404), path
        assert policy(response) == BASE, path
    quote = client.get(f"/lots/{lot.slug}/quote/?{window}", headers={"HX-Request": "true"})
    assert quote.status_code == 200
    assert policy(quote) == BASE  # the htmx fragment

    client.force_login(driver)
    paid = book(driver, lot, start=timezone.now() + timedelta(days=2))
    for path in (
        "/account/",
        "/account/password/",
        "/reservations/",
        f"/reservations/{paid.code}/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert policy(response) == BASE, path


def test_the_pay_page_adds_a_stand_in_stripe_js_by_its_own_origin(signed_in, driver, lot, settings):
    # localstripe (development, tests): its Stripe.js at <STRIPE_API_BASE>/js.stripe.com/v3/
    # calls back the server it came from, and draws no frame.
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_parkspot"
    settings.STRIPE_JS_URL = "http://stripe-stand-in.test:8420/js.stripe.com/v3/"
    reservation = book(driver, lot, start=timezone.now() + timedelta(days=1))

    response = signed_in.get(f"/reservations/{reservation.code}/pay/")

    assert response.status_code == 200
    assert 'src="http://stripe-stand-in.test:8420/js.stripe.com/v3/"' in response.content.decode()
    assert policy(response) == {
        **BASE,
        "script-src": ["'self'", "http://stripe-stand-in.test:8420"],
        "connect-src": ["'self'", "http://stripe-stand-in.test:8420"],
    }


def test_the_pay_page_adds_stripes_own_origins_for_stripe_js(signed_in, driver, lot, settings):
    settings.STRIPE_PUBLISHABLE_KEY = "pk_live_parkspot"
    settings.STRIPE_JS_URL = "https://js.stripe.com/v3/"
    reservation = book(driver, lot, start=timezone.now() + timedelta(days=1))

    response = signed_in.get(f"/reservations/{reservation.code}/pay/")

    assert response.status_code == 200
    assert policy(response) == {
        **BASE,
        "script-src": ["'self'", "https://js.stripe.com", "https://*.js.stripe.com"],
        "frame-src": [
            "https://js.stripe.com",
            "https://*.js.stripe.com",
            "https://hooks.stripe.com",
        ],
        "connect-src": ["'self'", "https://api.stripe.com"],
    }
    # Only the pay page: the pass and the list load no Stripe.js.
    assert policy(signed_in.get("/reservations/")) == BASE


def test_without_card_payments_the_pay_page_loads_no_stripe_js(signed_in, driver, lot, settings):
    settings.STRIPE_PUBLISHABLE_KEY = ""
    reservation = book(driver, lot, start=timezone.now() + timedelta(days=1))

    response = signed_in.get(f"/reservations/{reservation.code}/pay/")

    assert "js.stripe.com" not in response.content.decode()
    assert policy(response) == BASE


def test_the_api_carries_the_policy(client, api, driver_api, lot):
    assert policy(api.get("/api/v1/lots")) == BASE
    assert policy(api.get(f"/api/v1/lots/{lot.slug}")) == BASE
    assert policy(api.get("/api/v1/nothing-here")) == BASE  # the JSON 404
    assert policy(api.post("/api/v1/auth/token", {}, format="json")) == BASE
    assert policy(driver_api.get("/api/v1/reservations")) == BASE
    assert policy(api.get("/api/v1/schema/")) == BASE
    assert policy(client.get("/healthz")) == BASE


def test_the_availability_answer_carries_the_policy(api, lot):
    start = timezone.now() + timedelta(days=1)
    response = api.get(
        f"/api/v1/lots/{lot.slug}/availability",
        {
            "vehicle_type": "car",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
        },
    )
    assert response.status_code == 200
    assert policy(response) == BASE


def test_a_changed_policy_is_sent_from_the_next_response_on(client, settings):
    # The policy is built once and kept (config.csp.CSPMiddleware): a new setting
    # must not leave the old one in force.
    assert policy(client.get("/healthz")) == BASE
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {**BASE, "img-src": ["'self'", "data:"]}}
    assert policy(client.get("/healthz"))["img-src"] == ["'self'", "data:"]
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"default-src": ["'self'"]}}
    response = client.get("/healthz")
    assert response.headers["Content-Security-Policy-Report-Only"] == "default-src 'self'"


def test_the_api_docs_run_their_inline_code_by_nonce(client):
    response = client.get("/api/v1/docs/")

    assert response.status_code == 200
    directives = policy(response)
    nonce = directives["script-src"][1]
    assert re.fullmatch(r"'nonce-[A-Za-z0-9+/=]{20,}'", nonce)
    assert directives == {
        **BASE,
        "script-src": ["'self'", nonce],
        "style-src": ["'self'", nonce],
        "img-src": ["'self'", "data:"],
    }
    html = response.content.decode()
    value = nonce[len("'nonce-") : -1]
    assert html.count(f'nonce="{value}"') == 2  # the <style> and the start-up <script>
    assert len(re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html)) == 1
    # A fresh nonce for every response.
    assert policy(client.get("/api/v1/docs/"))["script-src"][1] != nonce


def test_the_admin_carries_the_policy(client, lot, driver):
    reservation = book(driver, lot, start=timezone.now() + timedelta(days=1))
    assert policy(client.get("/admin/login/")) == BASE
    client.force_login(UserFactory(email="admin@example.com", is_staff=True, is_superuser=True))
    for path in (
        "/admin/",
        "/admin/reservations/reservation/",
        f"/admin/reservations/reservation/{reservation.pk}/change/",
        "/admin/lots/lot/",
        f"/admin/lots/lot/{lot.pk}/change/",
        f"/admin/lots/lot/{lot.pk}/occupancy/",
        "/admin/lots/spot/add/",
        "/admin/jsi18n/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert policy(response) == BASE, path


def test_no_template_has_inline_script_or_style():
    """Everything our templates run or style comes from a static file (e-mails aside:
    a mail reader is no browser page, and needs its styles inline)."""
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        if "email" in path.relative_to(TEMPLATES).parts:
            continue
        text = path.read_text()
        for pattern in (r"<style(?![^>]*nonce=)", r"\sstyle=", r"<script(?![^>]*\b(?:src|nonce)=)"):
            offenders += [f"{path.relative_to(TEMPLATES)}: {m}" for m in re.findall(pattern, text)]
        offenders += [
            f"{path.relative_to(TEMPLATES)}: {m}"
            for m in re.findall(r"\son[a-z]+=|hx-on|javascript:", text)
        ]
    assert offenders == []
