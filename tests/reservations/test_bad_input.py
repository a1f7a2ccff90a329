"""Bad input to the booking API gets a clear 4xx, never a 500 (DESIGN §4 Time, §6, §8).

Every case is sent both ways a window reaches the API: as the JSON body of
POST /api/v1/reservations and as the query string of GET .../availability.
The test client re-raises server errors, so a 500 fails the test with its traceback.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from reservations.models import Reservation
from tests.conftest import NOW

RESERVATIONS = "/api/v1/reservations"
START = NOW + timedelta(hours=1)
END = START + timedelta(hours=2)
VALID = {
    "lot_id": "paris-centre",
    "vehicle_type": "car",
    "start": START.isoformat(),
    "end": END.isoformat(),
}
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


def iso(moment) -> str:
    return moment.isoformat()


def assert_error(response, status: int | None = None, code: str | None = None) -> dict:
    """An error as every client sees it: a 4xx, JSON with a code and a human detail."""
    assert 400 <= response.status_code < 500, (response.status_code, response.content)
    if status is not None:
        assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response.content
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("code"), str), body
    assert body["code"]
    assert isinstance(body.get("detail"), str), body
    assert body["detail"]
    for name, errors in body.get("fields", {}).items():
        assert isinstance(name, str)
        assert errors
        for error in errors:
            assert isinstance(error["code"], str)
            assert isinstance(error["detail"], str)
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture
def send(api, driver_api, lot, frozen_now):
    """send(kind, fields) → response; kind is "create" or "availability"."""

    def _send(kind: str, fields: dict):
        if kind == "create":
            # json.dumps escapes what UTF-8 cannot carry (a lone surrogate) as JSON does.
            return driver_api.post(
                RESERVATIONS, json.dumps(fields), content_type="application/json"
            )
        query = {k: v for k, v in fields.items() if k != "lot_id"}
        lot_id = fields.get("lot_id", "paris-centre")
        return api.get(f"/api/v1/lots/{lot_id}/availability", query)

    return _send


KINDS = pytest.mark.parametrize("kind", ["create", "availability"])


def test_the_valid_request_these_cases_start_from_is_accepted(send):
    assert send("create", VALID).status_code == 201
    assert send("availability", VALID).status_code == 200


# --- the window rules ---------------------------------------------------------------


WINDOW_CASES = [
    pytest.param({"start": "2026-03-04T11:00:00"}, "naive_datetime", "start", id="naive-start"),
    pytest.param({"end": "2026-03-04T13:00:00"}, "naive_datetime", "end", id="naive-end"),
    pytest.param(
        {"start": "2026-03-04 11:00:00"}, "naive_datetime", "start", id="naive-with-space"
    ),
    pytest.param({"end": iso(START)}, "end_before_start", "end", id="end-equals-start"),
    pytest.param(
        {"end": iso(START - timedelta(hours=1))}, "end_before_start", "end", id="end-first"
    ),
    pytest.param({"end": iso(START + 29 * MINUTE)}, "window_too_short", "end", id="29-minutes"),
    pytest.param(
        {"end": iso(START + timedelta(seconds=1))}, "window_too_short", "end", id="1-second"
    ),
    pytest.param(
        {"end": iso(START + 30 * DAY + MINUTE)},
        "window_too_long",
        "end",
        id="30-days-and-a-minute",
    ),
    pytest.param({"end": iso(START + 365 * DAY)}, "window_too_long", "end", id="a-year-long"),
    pytest.param(
        {"start": iso(NOW - 6 * MINUTE), "end": iso(NOW + timedelta(hours=2))},
        "start_in_past",
        "start",
        id="start-6-minutes-ago",
    ),
    pytest.param(
        {"start": iso(NOW - 20 * DAY), "end": iso(NOW - 19 * DAY)},
        "start_in_past",
        "start",
        id="window-in-the-past",
    ),
    pytest.param(
        {"start": iso(NOW + 90 * DAY + MINUTE), "end": iso(NOW + 90 * DAY + 3 * MINUTE * 20)},
        "start_too_far_ahead",
        "start",
        id="90-days-and-a-minute-ahead",
    ),
    pytest.param(
        {"start": iso(NOW + 400 * DAY), "end": iso(NOW + 401 * DAY)},
        "start_too_far_ahead",
        "start",
        id="next-year",
    ),
]


@KINDS
@pytest.mark.parametrize(("change", "code", "field"), WINDOW_CASES)
def test_a_window_breaking_a_rule_is_400_with_its_code_on_the_field(
    send, kind, change, code, field
):
    body = assert_error(send(kind, {**VALID, **change}), 400, code)

    assert body["fields"][field][0]["code"] == code


BOUNDARY_CASES = [
    pytest.param({"end": iso(START + 30 * MINUTE)}, id="exactly-30-minutes"),
    pytest.param({"end": iso(START + 30 * DAY)}, id="exactly-30-days"),
    pytest.param(
        {"start": iso(NOW - 4 * MINUTE), "end": iso(NOW + timedelta(hours=1))},
        id="started-4-minutes-ago",
    ),
    pytest.param(
        {"start": iso(NOW + 89 * DAY), "end": iso(NOW + 89 * DAY + timedelta(hours=2))},
        id="89-days-ahead",
    ),
    pytest.param(
        {"start": "2026-03-04T12:00:00+01:00", "end": "2026-03-04T14:00:00+01:00"},
        id="another-offset",
    ),
    pytest.param({"start": "2026-03-04T11:00:00Z", "end": "2026-03-04T13:00:00Z"}, id="z-suffix"),
    pytest.param(
        {"start": "2026-03-04T11:00:00.250+00:00", "end": "2026-03-04T13:00:00.750+00:00"},
        id="fractional-seconds",
    ),
]


@KINDS
@pytest.mark.parametrize("change", BOUNDARY_CASES)
def test_windows_at_the_limits_are_accepted(send, kind, change):
    response = send(kind, {**VALID, **change})

    assert response.status_code == (201 if kind == "create" else 200), response.content


# --- unknown things -----------------------------------------------------------------


@KINDS
@pytest.mark.parametrize(
    "lot_id",
    [
        pytest.param("nowhere", id="unknown"),
        pytest.param("PARIS-CENTRE", id="wrong-case"),
        pytest.param("1", id="database-key"),
        pytest.param("🅿️-lot", id="emoji"),
        pytest.param("x" * 60, id="longest-slug"),
    ],
)
def test_an_unknown_lot_is_404_lot_not_found(send, kind, lot_id):
    assert_error(send(kind, {**VALID, "lot_id": lot_id}), 404, "lot_not_found")


@pytest.mark.parametrize(
    "path_lot_id",
    [
        pytest.param("%00", id="nul-byte"),
        pytest.param("x" * 3000, id="huge"),
        pytest.param("%27%20OR%201%3D1--", id="sql-ish"),
        pytest.param("%F0%9F%85%BF", id="emoji"),
    ],
)
def test_a_junk_lot_id_in_the_availability_path_is_404_lot_not_found(
    api, lot, frozen_now, path_lot_id
):
    response = api.get(
        f"/api/v1/lots/{path_lot_id}/availability",
        {"vehicle_type": "car", "start": VALID["start"], "end": VALID["end"]},
    )

    assert_error(response, 404, "lot_not_found")


@KINDS
@pytest.mark.parametrize("vehicle_type", ["truck", "CAR", "", " car", "bicycle"])
def test_an_unknown_vehicle_type_is_400_on_that_field(send, kind, vehicle_type):
    body = assert_error(send(kind, {**VALID, "vehicle_type": vehicle_type}), 400)

    assert "vehicle_type" in body["fields"]
    assert body["code"] == body["fields"]["vehicle_type"][0]["code"]


# --- missing fields -----------------------------------------------------------------


@KINDS
@pytest.mark.parametrize("missing", ["vehicle_type", "start", "end"])
def test_a_missing_field_is_400_required_on_that_field(send, kind, missing):
    fields = {k: v for k, v in VALID.items() if k != missing}

    body = assert_error(send(kind, fields), 400, "required")

    assert body["fields"][missing][0]["code"] == "required"


def test_a_booking_without_a_lot_id_is_400_required(send):
    fields = {k: v for k, v in VALID.items() if k != "lot_id"}

    body = assert_error(send("create", fields), 400, "required")

    assert body["fields"]["lot_id"][0]["code"] == "required"


@KINDS
def test_an_empty_request_lists_every_missing_field(send, kind):
    body = assert_error(send(kind, {"lot_id": "paris-centre"} if kind != "create" else {}), 400)

    assert body["code"] == "required"
    expected = {"vehicle_type", "start", "end"} | ({"lot_id"} if kind == "create" else set())
    assert set(body["fields"]) == expected


# --- junk values ----------------------------------------------------------------------


JUNK_DATETIMES = [
    pytest.param("tomorrow at nine", id="words"),
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("2026-13-45T99:99:99+00:00", id="impossible-date"),
    pytest.param("2026-02-30T10:00:00+00:00", id="february-30"),
    pytest.param("2026-03-04T11:00:00+25:00", id="offset-out-of-range"),
    pytest.param("2026-03-04T11:00:00+00:00junk", id="trailing-junk"),
    pytest.param("9999-12-31T23:59:59-23:59", id="overflows-past-year-9999-in-utc"),
    pytest.param("0001-01-01T00:30:00+01:00", id="underflows-before-year-1-in-utc"),
    pytest.param("1773619200", id="epoch-seconds-as-string"),
    pytest.param("🕘🕙🕚", id="emoji"),
    pytest.param("\u202e2026-03-04T11:00:00+00:00", id="right-to-left-override"),
    pytest.param("2026-03-04T11:00:00+00:00" * 4000, id="huge-string"),
]


@KINDS
@pytest.mark.parametrize("field", ["start", "end"])
@pytest.mark.parametrize("value", JUNK_DATETIMES)
def test_a_junk_datetime_is_400_on_that_field(send, kind, field, value):
    body = assert_error(send(kind, {**VALID, field: value}), 400)

    assert field in body["fields"], body


JUNK_JSON_VALUES = [
    pytest.param(1773619200, id="number"),
    pytest.param(1.5, id="float"),
    pytest.param(True, id="boolean"),
    pytest.param(None, id="null"),
    pytest.param([], id="empty-list"),
    pytest.param(["2026-03-04T11:00:00+00:00"], id="list-of-a-date"),
    pytest.param({"date": "2026-03-04T11:00:00+00:00"}, id="object"),
    pytest.param("x" * 1_000_000, id="megabyte-string"),
    pytest.param("\x00", id="nul-byte"),
    pytest.param("\ud800", id="lone-surrogate"),
    pytest.param("Ω≈ç√∫\u02dcµ≤≥÷ 田中さん 🅿️🚗 \u200b\u202e", id="unicode-junk"),
]


@pytest.mark.parametrize("field", ["lot_id", "vehicle_type", "start", "end"])
@pytest.mark.parametrize("value", JUNK_JSON_VALUES)
def test_a_wrongly_typed_json_value_is_a_clean_4xx(send, field, value):
    response = send("create", {**VALID, field: value})

    assert_error(response)
    # A number given as lot_id reads as that text and names no lot: 404.
    assert response.status_code in (400, 404), response.content


@pytest.mark.parametrize(
    "value",
    [p for p in JUNK_JSON_VALUES if p.id not in {"number", "float"}],
)
def test_a_wrongly_typed_plate_is_400_on_the_plate_field(send, value):
    body = assert_error(send("create", {**VALID, "vehicle_plate": value}), 400)

    assert "vehicle_plate" in body["fields"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([VALID], id="list"),
        pytest.param("a string", id="string"),
        pytest.param(42, id="number"),
        pytest.param(None, id="null"),
        pytest.param({"booking": VALID}, id="nested"),
    ],
)
def test_a_json_body_that_is_not_the_expected_object_is_400(driver_api, lot, frozen_now, body):
    response = driver_api.post(RESERVATIONS, json.dumps(body), content_type="application/json")

    assert_error(response, 400)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('{"lot_id": "paris-centre",', id="truncated"),
        pytest.param("{'lot_id': 'paris-centre'}", id="single-quotes"),
        pytest.param('{"start": NaN}', id="nan"),
        pytest.param('{"start": Infinity}', id="infinity"),
        pytest.param(b"\xff\xfe\x00{", id="not-utf8"),
        pytest.param("", id="empty-body"),
        pytest.param("\ufeff{}", id="byte-order-mark"),
    ],
)
def test_malformed_json_is_400_malformed_request(driver_api, lot, frozen_now, raw):
    response = driver_api.post(RESERVATIONS, raw, content_type="application/json")

    body = assert_error(response, 400)
    if raw not in ("", "\ufeff{}"):
        assert body["code"] == "malformed_request"


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"],
)
def test_a_body_that_is_not_json_is_415_unsupported_media_type(
    driver_api, lot, frozen_now, content_type
):
    response = driver_api.post(RESERVATIONS, "lot_id=paris-centre", content_type=content_type)

    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "plate",
    [
        pytest.param("AB-" + "1" * 17, id="too-long-after-normalising"),
        pytest.param("X" * 21, id="too-long"),
    ],
)
def test_an_overlong_plate_is_400_on_the_plate_field(send, plate):
    body = assert_error(send("create", {**VALID, "vehicle_plate": plate}), 400)

    assert "vehicle_plate" in body["fields"]


# --- the availability query string ----------------------------------------------------


QUERY_JUNK = [
    pytest.param("start=2026-03-04T11:00:00+00:00", id="unencoded-plus-in-offset"),
    pytest.param("start=%00", id="nul-byte"),
    pytest.param("start=%ED%A0%80", id="encoded-surrogate"),
    pytest.param("start=%FF%FE", id="invalid-utf8"),
    pytest.param("start[]=2026-03-04T11:00:00Z", id="php-style-array"),
    pytest.param("vehicle_type=%00", id="nul-vehicle-type"),
    pytest.param("vehicle_type=" + "car" * 5000, id="huge-vehicle-type"),
]


@pytest.mark.parametrize("query", QUERY_JUNK)
def test_a_junk_availability_query_string_is_400(api, lot, frozen_now, query):
    base = {
        "vehicle_type": "car",
        "start": VALID["start"].replace("+", "%2B"),
        "end": VALID["end"].replace("+", "%2B"),
    }
    name = query.split("=", 1)[0]
    parts = [f"{k}={v}" for k, v in base.items() if k != name.removesuffix("[]")]

    response = api.get("/api/v1/lots/paris-centre/availability?" + "&".join([*parts, query]))

    assert_error(response, 400)


def test_repeated_query_parameters_do_not_break_availability(api, lot, frozen_now):
    query = "&".join(
        [
            "vehicle_type=car",
            "vehicle_type=van",
            "start=" + VALID["start"].replace("+", "%2B"),
            "start=garbage",
            "end=" + VALID["end"].replace("+", "%2B"),
        ]
    )

    response = api.get(f"/api/v1/lots/paris-centre/availability?{query}")

    assert response.status_code < 500
    if response.status_code >= 400:
        assert_error(response)


# --- other addresses --------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("%00", id="nul-byte"),
        pytest.param("x" * 3000, id="huge"),
        pytest.param("%F0%9F%85%BF", id="emoji"),
        pytest.param("%27%20OR%201%3D1--", id="sql-ish"),
        pytest.param("%D9%A3%D9%A3%D9%A3%D9%A3-%D9%A3%D9%A3%D9%A3%D9%A3", id="arabic-digits"),
    ],
)
def test_a_junk_reservation_code_is_404_reservation_not_found(driver_api, lot, code):
    assert_error(driver_api.get(f"{RESERVATIONS}/{code}"), 404, "reservation_not_found")
    assert_error(driver_api.post(f"{RESERVATIONS}/{code}/cancel"), 404, "reservation_not_found")


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"status": "lost"}, id="unknown-status"),
        pytest.param({"status": "\x00"}, id="nul-status"),
        pytest.param({"cursor": "junk"}, id="junk-cursor"),
    ],
)
def test_junk_reservation_list_filters_are_a_clean_4xx(driver_api, lot, query):
    assert_error(driver_api.get(RESERVATIONS, query))


def forged_cursor(position: str) -> str:
    """A cursor as DRF writes one (base64 of a query string), holding any position."""
    return base64.b64encode(urlencode({"p": position}).encode()).decode()


@pytest.mark.parametrize(
    "position",
    [
        pytest.param("junk", id="words"),
        pytest.param("", id="empty"),
        pytest.param("\x00", id="nul-byte"),
        pytest.param("2026-13-45 00:00:00+00:00", id="impossible-date"),
        pytest.param("2026-03-04 10:00:00", id="naive"),
        pytest.param("2026-03-04", id="date-only"),
        pytest.param("9999-12-31 23:59:59-23:59", id="past-year-9999-in-utc"),
        pytest.param("1" * 5000, id="huge-number"),
        pytest.param("x" * 5000, id="huge"),
    ],
)
def test_a_forged_cursor_on_the_reservation_list_is_400_invalid_cursor(driver_api, lot, position):
    # The list is ordered by -created_at: the cursor's position is a timestamp.
    response = driver_api.get(RESERVATIONS, {"cursor": forged_cursor(position)})

    body = assert_error(response, 400, "invalid_cursor")
    assert body["fields"]["cursor"][0]["code"] == "invalid_cursor"


def test_a_cursor_at_a_real_time_pages_on_from_it(driver_api, lot, frozen_now):
    first = driver_api.post(RESERVATIONS, VALID, format="json").json()
    later = {**VALID, "start": iso(END), "end": iso(END + timedelta(hours=2))}
    second = driver_api.post(RESERVATIONS, later, format="json").json()
    assert first["status"] == second["status"] == "pending_payment"

    # Older than the newest booking: only the first one is listed after it.
    position = str(Reservation.objects.get(code=second["id"]).created_at)
    response = driver_api.get(RESERVATIONS, {"cursor": forged_cursor(position)})

    assert response.status_code == 200, response.content
    assert [r["id"] for r in response.json()["results"]] == [first["id"]]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"city": "\x00"}, id="nul-city"),
        pytest.param({"city": "x" * 500}, id="huge-city"),
        pytest.param({"vehicle_type": "truck"}, id="unknown-vehicle-type"),
        pytest.param({"cursor": "junk"}, id="junk-cursor"),
    ],
)
def test_junk_lot_filters_are_a_clean_4xx(api, lot, query):
    assert_error(api.get("/api/v1/lots", query))


def test_an_unknown_api_address_is_a_json_404(api, db):
    assert_error(api.get("/api/v1/nothing-here"), 404, "not_found")


@pytest.mark.parametrize("length", [256, 10_000])
def test_an_overlong_idempotency_key_is_400(driver_api, lot, frozen_now, length):
    response = driver_api.post(
        RESERVATIONS, VALID, format="json", HTTP_IDEMPOTENCY_KEY="k" * length
    )

    assert_error(response, 400, "invalid_idempotency_key")
