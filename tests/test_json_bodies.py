"""JSON bodies no endpoint takes are a 400 with a code, whoever sends them (DESIGN §6, §8).

Every JSON body goes through one parser (config.api.parse_json_object), so the
cases are sent to an endpoint that needs no login (auth/token), to a driver's
(reservations) and to a gate's (gate/arrivals). The test client re-raises server
errors: a 500 fails the test with its traceback.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from lots.services import gate_create
from tests.reservations.test_bad_input import assert_error

TOKEN = "/api/v1/auth/token"
RESERVATIONS = "/api/v1/reservations"
ARRIVALS = "/api/v1/gate/arrivals"


@pytest.fixture
def post(driver_api, lot):
    """post(endpoint, raw JSON text) → response, as the client each endpoint expects."""
    _, key = gate_create(lot=lot, name="North entrance")
    gate = APIClient()
    gate.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    clients = {TOKEN: APIClient(), RESERVATIONS: driver_api, ARRIVALS: gate}

    def _post(endpoint: str, raw: str | bytes):
        return clients[endpoint].post(endpoint, raw, content_type="application/json")

    return _post


ENDPOINTS = pytest.mark.parametrize("endpoint", [TOKEN, RESERVATIONS, ARRIVALS])


@ENDPOINTS
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("[" * 1000 + "]" * 1000, id="arrays-1000-deep"),
        pytest.param('{"a":' * 1000 + "1" + "}" * 1000, id="objects-1000-deep"),
        pytest.param('{"email":' + "[" * 100_000 + "]" * 100_000 + "}", id="arrays-100000-deep"),
        pytest.param('{"a":' * 33 + "{}" + "}" * 33, id="just-past-the-limit"),
    ],
)
def test_json_nested_too_deep_is_400_too_deeply_nested(post, endpoint, raw):
    assert_error(post(endpoint, raw), 400, "too_deeply_nested")


def test_json_nested_within_the_limit_reaches_the_endpoint(post):
    # 32 levels: the parser lets it through and the serializer judges the field.
    raw = '{"email": ' + "[" * 31 + "]" * 31 + ', "password": "x"}'

    body = assert_error(post(TOKEN, raw), 400)

    assert "email" in body["fields"]


@ENDPOINTS
@pytest.mark.parametrize(
    "number",
    [
        pytest.param("1" * 5000, id="5000-digits"),  # past Python's int-string limit
        pytest.param("1" + "0" * 4000, id="4001-digits"),
        pytest.param("9223372036854775808", id="2-to-the-63"),
        pytest.param("-9223372036854775809", id="below-minus-2-to-the-63"),
        pytest.param("1e999", id="float-overflowing-to-infinity"),
        pytest.param("-1e999", id="float-overflowing-to-minus-infinity"),
    ],
)
def test_a_number_beyond_64_bits_is_400_number_out_of_range(post, endpoint, number):
    raw = f'{{"email": "a@example.com", "password": {number}, "time": {number}}}'

    assert_error(post(endpoint, raw), 400, "number_out_of_range")


@ENDPOINTS
@pytest.mark.parametrize(
    ("raw", "where"),
    [
        pytest.param('{"email": "a\\u0000b@example.com"}', "email", id="nul-in-a-value"),
        pytest.param('{"email\\u0000": "a@example.com"}', "email\x00", id="nul-in-a-key"),
        pytest.param('{"a": {"b": ["ok", "\\u0000"]}}', "a.b", id="nul-nested"),
        pytest.param('{"email": "\\ud800"}', "email", id="lone-surrogate"),
        pytest.param('{"email": "\\udfff\\ud800"}', "email", id="surrogates-the-wrong-way"),
        pytest.param('{"\\ud800": 1}', "\ud800", id="lone-surrogate-in-a-key"),
    ],
)
def test_a_nul_byte_or_lone_surrogate_is_400_invalid_character_where_it_is(
    post, endpoint, raw, where
):
    body = assert_error(post(endpoint, raw), 400, "invalid_character")

    # Named as it was sent, but with no bad character echoed back.
    assert list(body["fields"]) == [where.replace("\x00", "\ufffd").replace("\ud800", "\ufffd")]


@ENDPOINTS
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('[{"email": "a@example.com"}]', id="array"),
        pytest.param('"a@example.com"', id="string"),
        pytest.param("42", id="number"),
        pytest.param("null", id="null"),
        pytest.param("true", id="boolean"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400_not_an_object(post, endpoint, raw):
    assert_error(post(endpoint, raw), 400, "not_an_object")


@ENDPOINTS
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b'{"email": "\xed\xa0\x80"}', id="utf8-encoded-surrogate"),
        pytest.param('{"password": NaN}', id="nan"),
        pytest.param("{", id="truncated"),
    ],
)
def test_a_body_that_is_not_json_is_400_malformed_request(post, endpoint, raw):
    assert_error(post(endpoint, raw), 400, "malformed_request")


def test_a_good_body_with_real_text_and_numbers_is_taken(api, driver):
    body = {"email": driver.email, "password": "correct horse battery", "n": [1, -2, 3.5]}

    response = api.post(TOKEN, body, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["token"]
