"""The availability question's lane (config/lean_lane.py): a cookie-less,
credential-less GET of a lot's availability skips the session, user and message
middlewares, and gets the same status, headers (in the same order) and
bytes as through Django's own; anything else goes through them as before."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from config.lean_lane import in_lean_lane

pytestmark = pytest.mark.django_db

REQUEST_ID = "lane-test-0001"  # a fixed X-Request-ID: the answers can be compared whole


# One window for both runs: their answers must match byte for byte.
START = timezone.now().replace(microsecond=0) + timedelta(days=1)


def _window(start=START) -> dict[str, str]:
    return {
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
    }


def _questions(lot) -> list[tuple[str, str, dict, dict]]:
    """(method, path, query, extra headers): answered, refused and other ways."""
    url = f"/api/v1/lots/{lot.slug}/availability"
    return [
        ("get", url, _window(), {}),
        ("get", url, _window(), {}),  # from the cache this time
        ("get", url, {**_window(), "features": "covered", "vehicle_height_cm": "190"}, {}),
        ("get", url, {**_window(), "end": "yesterday"}, {}),  # 400, DRF's words
        ("get", url, {**_window(), "features": "jacuzzi"}, {}),
        ("get", url, _window(), {"HTTP_ACCEPT": "text/html"}),  # 406
        ("get", url, {**_window(), "format": "json"}, {}),
        ("get", "/api/v1/lots/nowhere/availability", _window(), {}),  # 404
        ("get", url, _window(), {"HTTP_COOKIE": "sessionid=x; csrftoken=y"}),
        ("get", url, _window(), {"HTTP_AUTHORIZATION": "Bearer nothing"}),
        ("get", url, _window(), {"HTTP_HOST": "elsewhere.example"}),  # 400, a disallowed host
        ("head", url, _window(), {}),
        ("post", url, {}, {}),  # 405
        ("get", f"/api/v1/lots/{lot.slug}", {}, {}),
    ]


def _answers(lot) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    client = Client(HTTP_X_REQUEST_ID=REQUEST_ID)
    client.cookies.clear()
    answers = []
    for method, path, query, headers in _questions(lot):
        response = getattr(client, method)(path, query, **headers)
        answers.append((response.status_code, list(response.items()), response.content))
    return answers


def test_the_lane_answers_as_django_s_middlewares_would(lot, settings):
    through_lane = _answers(lot)
    lane_versions = settings.LEAN_LANE
    settings.MIDDLEWARE = [
        next((django for django, lane in lane_versions.items() if lane == name), name)
        for name in settings.MIDDLEWARE
    ]
    assert not any(name.startswith("config.lean_lane") for name in settings.MIDDLEWARE)
    through_django = _answers(lot)

    assert [status for status, _, _ in through_lane] == [
        200, 200, 200, 400, 400, 406, 200, 404, 200, 200, 400, 200, 405, 200,
    ]  # fmt: skip
    for lane, django in zip(through_lane, through_django, strict=True):
        assert lane == django


def test_only_a_plain_availability_question_takes_the_lane(lot):
    url = f"/api/v1/lots/{lot.slug}/availability"
    plain = Client().get(url, _window())
    assert in_lean_lane(plain.wsgi_request)
    assert not hasattr(plain.wsgi_request, "session")  # no session store was made

    for response in (
        Client().get(url, _window(), HTTP_COOKIE="sessionid=x"),
        Client().get(url, _window(), HTTP_AUTHORIZATION="Bearer x"),
        Client().post(url, {}),
        Client().get(f"/api/v1/lots/{lot.slug}"),
        Client().get(f"/api/v1/lots/{lot.slug}/availability/more"),
    ):
        assert not in_lean_lane(response.wsgi_request)
        assert hasattr(response.wsgi_request, "session")


def test_the_lane_versions_stand_where_django_s_did():
    names = [name.rsplit(".", 1)[1] for name in settings.MIDDLEWARE]
    assert names.index("SessionMiddleware") < names.index("AuthenticationMiddleware")
    assert names.index("AuthenticationMiddleware") < names.index("OTPMiddleware")
    assert names.index("OTPMiddleware") < names.index("MessageMiddleware")
    for django, lane in settings.LEAN_LANE.items():
        assert django not in settings.MIDDLEWARE
        assert lane in settings.MIDDLEWARE
