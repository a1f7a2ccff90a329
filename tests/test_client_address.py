"""Limits keyed by client address believe X-Forwarded-For only as far as the
configured trusted proxies say, so a client cannot reset them by writing it."""

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from config.net import client_ip


def _request(remote="203.0.113.9", forwarded=None):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


def test_with_no_trusted_proxy_the_header_is_ignored(settings):
    settings.TRUSTED_PROXIES = 0
    assert client_ip(_request(forwarded="1.2.3.4")) == "203.0.113.9"


def test_behind_one_proxy_the_address_it_saw_is_the_client(settings):
    settings.TRUSTED_PROXIES = 1
    # The client wrote "6.6.6.6"; our proxy appended the address it really saw.
    assert client_ip(_request(remote="10.0.0.2", forwarded="6.6.6.6, 198.51.100.7")) == (
        "198.51.100.7"
    )


def test_behind_two_proxies_the_outer_ones_view_counts(settings):
    settings.TRUSTED_PROXIES = 2
    chain = "6.6.6.6, 198.51.100.7, 10.0.0.3"
    assert client_ip(_request(remote="10.0.0.2", forwarded=chain)) == "198.51.100.7"


def test_fewer_hops_than_configured_falls_back_to_the_connection(settings):
    settings.TRUSTED_PROXIES = 2
    assert client_ip(_request(remote="10.0.0.2", forwarded="198.51.100.7")) == "10.0.0.2"


@pytest.mark.django_db
def test_a_new_x_forwarded_for_per_request_does_not_reset_the_token_limit(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]},
    }
    client = APIClient()
    statuses = [
        client.post(
            "/api/v1/auth/token",
            {"email": "nobody@example.com", "password": "wrong-password"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"10.9.{n // 250}.{n % 250}",
        ).status_code
        for n in range(25)
    ]
    assert 429 in statuses
    assert statuses.index(429) <= 20


def test_https_is_believed_only_behind_a_trusted_proxy():
    from django.conf import settings

    assert settings.TRUSTED_PROXIES == 0
    assert settings.SECURE_PROXY_SSL_HEADER is None


def test_gunicorn_listens_on_loopback_unless_told_otherwise(monkeypatch):
    import importlib

    import config.gunicorn

    monkeypatch.delenv("GUNICORN_BIND", raising=False)
    assert importlib.reload(config.gunicorn).bind == "127.0.0.1:8000"
    monkeypatch.setenv("GUNICORN_BIND", "0.0.0.0:9000")
    assert importlib.reload(config.gunicorn).bind == "0.0.0.0:9000"
