"""checkCapacity's lean path (reservations.api.AvailabilityApi.as_view): a
well-formed question is answered without DRF's machinery, with the very bytes
DRF would send; anything else is DRF's to answer, with its usual errors. A cached
answer costs one query (the lot's version) and one cache read."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from lots.services import lot_facts_set
from reservations.selectors import forget_kept_answers
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db


def _params(start, hours: float = 2, vehicle_type: str = "car") -> dict[str, str]:
    return {
        "vehicle_type": vehicle_type,
        "start": start.isoformat(),
        "end": (start + timedelta(hours=hours)).isoformat(),
    }


def _url(lot) -> str:
    return f"/api/v1/lots/{lot.slug}/availability"


def test_the_lean_answer_is_byte_for_byte_what_drf_answers(api, lot, driver):
    start = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    book(driver, lot, start=start)
    lean = api.get(_url(lot), _params(start))
    # An Accept header DRF must negotiate sends the question down DRF's path.
    full = api.get(_url(lot), _params(start), HTTP_ACCEPT="application/json; indent=0")
    assert not hasattr(lean, "data")  # not a DRF Response: the lean path answered
    assert hasattr(full, "data")
    assert lean.status_code == full.status_code == 200
    assert lean.json()["free_spots"] == 2
    for header in ("Content-Type", "Allow", "Content-Security-Policy", "X-Frame-Options"):
        assert lean.headers.get(header) == full.headers.get(header), header
    # DRF's "indent=0" media type parameter changes the layout only.
    assert lean.content == api.get(_url(lot), _params(start), HTTP_ACCEPT="*/*").content
    assert lean.json() == full.json()


def test_the_lean_answer_keeps_microseconds_and_utc_like_drf(api, lot):
    start = timezone.now() + timedelta(days=1, microseconds=123)
    lean = api.get(_url(lot), _params(start)).json()
    full = api.get(_url(lot), _params(start), HTTP_ACCEPT="application/json; q=0.9").json()
    assert lean == full
    assert lean["start"].endswith("Z")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"start": "2026-05-01T09:00:00"}, 400, "naive_datetime"),
        ({"start": "tomorrow"}, 400, "invalid"),
        ({"vehicle_type": "tank"}, 400, "invalid_choice"),
        ({"vehicle_type": None}, 400, "required"),
    ],
)
def test_bad_questions_get_drfs_errors(api, lot, change, status, code):
    params = _params(timezone.now() + timedelta(days=1))
    for key, value in change.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    response = api.get(_url(lot), params)
    assert response.status_code == status
    assert response.json()["code"] == code


def test_a_window_the_rules_refuse_is_answered_by_drf_with_its_code(api, lot):
    response = api.get(_url(lot), _params(timezone.now() + timedelta(days=1), hours=0.1))
    assert response.status_code == 400
    assert response.json()["code"] == "window_too_short"


def test_an_unknown_lot_is_a_404_with_its_code(api, lot):
    response = api.get(
        "/api/v1/lots/nowhere/availability", _params(timezone.now() + timedelta(days=1))
    )
    assert response.status_code == 404
    assert response.json()["code"] == "lot_not_found"


def test_a_client_that_accepts_no_json_is_refused_as_before(api, lot):
    response = api.get(
        _url(lot), _params(timezone.now() + timedelta(days=1)), HTTP_ACCEPT="text/html"
    )
    assert response.status_code == 406


def test_other_methods_are_drfs_to_refuse(api, lot):
    assert api.post(_url(lot), {}, format="json").status_code == 405


class _CacheCalls:
    """Counts the calls made to the cache (the real one, called through)."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[str] = []
        for name in ("get", "set", "get_many", "add", "incr", "delete"):
            original = getattr(cache, name)
            monkeypatch.setattr(cache, name, self._counted(name, original))

    def _counted(self, name, original):
        def call(*args, **kwargs):
            self.calls.append(name)
            return original(*args, **kwargs)

        return call


def test_a_cached_answer_costs_one_query_and_at_most_one_cache_read(api, lot, monkeypatch):
    params = _params(timezone.now() + timedelta(days=3))
    counted = _CacheCalls(monkeypatch)
    with CaptureQueriesContext(connection) as first:
        assert api.get(_url(lot), params).status_code == 200
    assert len(first.captured_queries) == 3  # the lot's version, its opening hours, the count
    assert counted.calls == ["get", "set"]

    counted.calls.clear()
    with CaptureQueriesContext(connection) as again:
        answer = api.get(_url(lot), params)
    assert answer.status_code == 200
    assert answer.json()["free_spots"] == 3
    assert len(again.captured_queries) == 1  # the lot's version only
    assert counted.calls == []  # this process kept the answer it worked out

    forget_kept_answers()  # another worker: the answer comes from the shared cache
    with CaptureQueriesContext(connection) as elsewhere:
        assert api.get(_url(lot), params).content == answer.content
    assert len(elsewhere.captured_queries) == 1
    assert counted.calls == ["get"]


def test_an_uncached_answer_reads_the_opening_hours_once_per_version_of_the_lot(api, lot):
    day = timezone.now() + timedelta(days=3)
    with CaptureQueriesContext(connection) as first:
        assert api.get(_url(lot), _params(day)).status_code == 200
    with CaptureQueriesContext(connection) as other_window:
        assert api.get(_url(lot), _params(day + timedelta(hours=5))).status_code == 200
    assert len(first.captured_queries) == 3  # the version, the opening hours, the count
    assert len(other_window.captured_queries) == 2  # the hours are known at this version

    # New opening hours bump the version: they are read again, and they hold.
    lot_facts_set(lot=lot, opening_hours=[(day.astimezone(lot.tz).weekday(), time(5), time(6))])
    refused = api.get(_url(lot), _params(day + timedelta(hours=5)))
    assert refused.status_code == 409
    assert refused.json()["code"] == "outside_opening_hours"


@pytest.mark.postgres
def test_the_prepared_availability_query_finds_busy_spots_by_range_in_any_plan(lot):
    # Prepared, PostgreSQL switches to a generic plan (one for any values) after
    # five runs: that plan must still find the busy spots by the bookings that
    # overlap the window (a range index), never by probing each spot.
    from reservations import hot_sql

    start = timezone.now() + timedelta(days=1)
    for i in range(8):
        hot_sql.availability(
            lot_pk=lot.pk,
            vehicle_type="car",
            start=start + timedelta(minutes=i),
            end=start + timedelta(hours=2),
            now=timezone.now(),
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%AS first_lapse%"],
        )
        (name,) = cursor.fetchone()
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        try:
            # EXPLAIN takes no bound parameters: literals (ours, not input).
            times = [start, start + timedelta(hours=2), timezone.now()]
            cursor.execute(
                f"EXPLAIN EXECUTE {name}({int(lot.pk)}, 'car', "
                + ", ".join(f"'{t.isoformat()}'" for t in times)
                + ")"
            )
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET plan_cache_mode")
    range_scans = [line for line in plan.splitlines() if "Index Cond" in line and "&&" in line]
    assert range_scans, plan  # a GiST index on booked ranges (reservation_lot_busy)
    assert "reservation_spot_until" not in plan
    assert "reservation_spot_start" not in plan
    # When the first hold lapses: from the lot's own open holds, not every lot's.
    assert "reservation_lot_open_holds" in plan, plan
    assert "reservation_pending_holds" not in plan


@pytest.mark.parametrize(
    "query",
    [
        "vehicle_type=car&start=2026-12-07T04%3A00%3A00%2B00%3A00&end=2026-12-07T06:00:00Z",
        "vehicle_type=van&vehicle_type=car&features=&features=covered%2Caccessible",
        "start=2026-12-07T04:00:00+01:00&vehicle_height_cm=+190&format",
        "a=%E2%82%AC&b=%FF&c==d&&=e",
        "",
    ],
)
def test_the_lean_path_reads_the_query_as_django_does(query):
    from django.test import RequestFactory

    from reservations.api import _query

    request = RequestFactory().get("/", QUERY_STRING=query)
    assert _query(request) == {name: request.GET.get(name) for name in request.GET}


def test_a_query_django_would_decode_or_refuse_otherwise_is_left_to_it(settings):
    from django.test import RequestFactory

    from reservations.api import _query

    assert _query(RequestFactory().get("/", QUERY_STRING="start=é")) is None
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 2
    assert _query(RequestFactory().get("/", QUERY_STRING="a=1&b=2&c=3")) is None
