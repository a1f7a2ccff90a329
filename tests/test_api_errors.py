"""Every error under /api/ is JSON in the error format with a code (DESIGN §6),
also those Django answers itself around our views: a body too large, too many
fields, a disallowed host, an unknown address, a method a view does not take."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import Client, RequestFactory

from config.views import server_error
from tests.reservations.test_bad_input import assert_error

TOO_LARGE = b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)


ENDPOINTS_WITH_A_BODY = pytest.mark.parametrize(
    ("path", "as_driver"),
    [
        pytest.param("/api/v1/auth/token", False, id="token"),
        pytest.param("/api/v1/auth/register", False, id="register"),
        pytest.param("/api/v1/reservations", True, id="reservations"),
    ],
)


@ENDPOINTS_WITH_A_BODY
def test_a_json_body_over_the_upload_limit_is_413_request_too_large(
    api, driver_api, path, as_driver
):
    client = driver_api if as_driver else api

    response = client.post(path, TOO_LARGE, content_type="application/json")

    assert_error(response, 413, "request_too_large")


@ENDPOINTS_WITH_A_BODY
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_a_large_body_of_another_type_is_415_before_it_is_read(
    api, driver_api, path, as_driver, content_type
):
    client = driver_api if as_driver else api

    response = client.post(path, TOO_LARGE, content_type=content_type)

    assert_error(response, 415, "unsupported_media_type")


def test_a_gate_without_its_key_is_401_before_its_large_body_is_read(api, db):
    response = api.post("/api/v1/gate/arrivals", TOO_LARGE, content_type="application/json")

    assert_error(response, 401, "not_authenticated")


def test_more_query_parameters_than_django_reads_is_400_too_many_fields(api, db):
    query = "&".join(f"p{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))

    assert_error(api.get(f"/api/v1/lots?{query}"), 400, "too_many_fields")


def test_a_host_we_do_not_serve_is_a_json_400(db):
    response = Client().get("/api/v1/lots", HTTP_HOST="evil.example")

    assert_error(response, 400, "bad_request")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/v1/auth/token"),
        ("delete", "/api/v1/lots"),
        ("patch", "/api/v1/schema/"),  # a YAML view: its errors are JSON all the same
        ("post", "/api/v1/docs/"),  # an HTML view
        ("options", "/api/v1/docs/"),
    ],
)
def test_a_method_an_endpoint_does_not_take_is_a_json_405(api, db, method, path):
    assert_error(getattr(api, method)(path), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing", "/api/v2/lots", "/api/", "/api/v1/lots/x/y/z", "/api/v1/%00"]
)
def test_an_unknown_api_address_is_a_json_404(api, db, path):
    assert_error(api.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/schema/?format=xml", 404, "not_found"),
        ("/api/v1/lots?format=xml", 404, "not_found"),
    ],
)
def test_a_format_the_api_does_not_speak_is_a_json_error(api, db, path, status, code):
    assert_error(api.get(path), status, code)


def test_docs_asked_for_in_a_type_they_do_not_come_in_is_a_json_406(api, db):
    assert_error(api.get("/api/v1/docs/", HTTP_ACCEPT="application/json"), 406, "not_acceptable")


def test_a_server_error_under_the_api_is_json():
    response = server_error(RequestFactory().get("/api/v1/lots"))

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["code"] == "server_error"


def test_a_body_too_large_for_a_website_form_is_a_400_page(client, db):
    response = client.post(
        "/accounts/login/", TOO_LARGE, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
