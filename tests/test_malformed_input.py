"""Malformed input at every door: every API endpoint (found in the URL resolver),
every website page and form, and the Stripe webhook, with and without a login.
Whatever arrives, the answer is never a 5xx, and under /api/ it is JSON with a
code (DESIGN §6, §8).

tests/test_api_fuzz.py fuzzes the API inside its own schema; this goes beyond
it: bodies nested a thousand deep, numbers of 5,000 digits, NUL bytes and lone
surrogates, a 3 MB body, bytes that are not UTF-8, the wrong Content-Type, and
every field of every form and body set to such values in turn. Run it on
PostgreSQL too: it refuses NUL bytes that SQLite takes.

Failures are collected, not raised at the first one: a run lists every door
that answered 5xx (the tracebacks are in the captured log).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from lots.services import gate_create
from parking.services import vehicle_add
from payments.models import StripeEvent
from reservations.services import reservation_confirm
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db
# Where Stripe is called: transactions as in production (the gateway refuses
# to call Stripe inside one, and a test's own transaction would be one).
CALLS_STRIPE = pytest.mark.django_db(transaction=True)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

# --- what is thrown -----------------------------------------------------------------------

# Whole bodies, as (id, body, Content-Type).
JUNK_BODIES: list[tuple[str, str | bytes, str]] = [
    ("arrays-1000-deep", "[" * 1000 + "]" * 1000, JSON),
    ("objects-1000-deep", '{"a":' * 1000 + "1" + "}" * 1000, JSON),
    ("5000-digit-number", '{"n": ' + "9" * 5000 + "}", JSON),
    ("float-overflow", '{"n": 1e999, "m": -1e999}', JSON),
    ("nan", '{"n": NaN}', JSON),
    ("nul-in-a-value", '{"email": "a\\u0000b", "time": "\\u0000"}', JSON),
    ("nul-in-a-key", '{"\\u0000": 1}', JSON),
    ("lone-surrogate", '{"email": "\\ud800", "plate": "\\udfff"}', JSON),
    ("array", '[{"email": "a@example.com"}]', JSON),
    ("string", '"a@example.com"', JSON),
    ("number", "42", JSON),
    ("null", "null", JSON),
    ("three-megabytes", '{"email": "' + "a" * 3_000_000 + '"}', JSON),
    ("invalid-utf8", b'{"email": "\xff\xfe"}', JSON),
    ("utf8-encoded-surrogate", b'{"email": "\xed\xa0\x80"}', JSON),
    ("utf16-declared", '{"email": "a"}'.encode("utf-16"), f"{JSON}; charset=utf-16"),
    ("unknown-charset", "{}", f"{JSON}; charset=rot13"),
    ("empty", "", JSON),
    ("truncated", '{"email": ', JSON),
    ("text-plain", '{"email": "a"}', "text/plain"),
    ("form-with-nul", "email=%00&password=a%00b&time=%ED%A0%80", FORM),
    ("form-invalid-utf8", b"email=\xff\xfe&password=\xc3", FORM),
    ("multipart-garbage", "--x\r\nnonsense\r\n", "multipart/form-data; boundary=x"),
    ("multipart-no-boundary", "a", "multipart/form-data"),
    ("no-content-type", '{"email": "a"}', ""),
]

# Values for one field of an otherwise good body.
JUNK_JSON_VALUES = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x" * 100_000,
    "🅿️" * 500,
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+14:00",
    10**30,
    -1,
    1e308,
    True,
    None,
    [],
    {},
    ["\x00"],
    {"\x00": "\ud800"},
    json.loads("[" * 30 + "]" * 30),
]

# Raw (already percent-encoded) values for one query parameter or form field.
JUNK_RAW_VALUES = [
    "%00",
    "a%00b",
    "%ED%A0%80",  # a surrogate, encoded as UTF-8 (not UTF-8)
    "%FF%FE",
    "x" * 20_000,
    "%F0%9F%85%BF" * 1000,
    "9" * 5000,
    "-1",
    "9999-12-31T23%3A59",
    "0001-01-01T00%3A00",
    "%0D%0ASet-Cookie%3A%20x%3D1",
    "cD0lMDA%3D",  # a page cursor: base64 of "p=%00"
    "cD1qdW5r",  # base64 of "p=junk"
]


@dataclass
class Doors:
    """Whom the fuzz speaks as, and the ids its addresses need."""

    client: Client
    driver_token: str
    gate_key: str
    ids: dict[str, str]
    addresses: itertools.count

    def send(self, method: str, path: str, body=b"", content_type=JSON, auth=None, **extra):
        # A new client address for every request, so that the per-address
        # throttles (20 sign-ins a minute) never answer in the fuzz's place.
        n = next(self.addresses)
        extra["REMOTE_ADDR"] = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        if auth:
            extra["HTTP_AUTHORIZATION"] = auth
        return self.client.generic(method.upper(), path, body, content_type=content_type, **extra)


@pytest.fixture
def doors(stripe, settings, lot, driver) -> Doors:
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    vehicle = vehicle_add(owner=driver, plate="AB-123-CD", vehicle_type="car", nickname="Clio")
    pending = book(driver, lot, hours=2)
    confirmed = reservation_confirm(
        reservation_id=book(driver, lot, start=timezone.now() - timedelta(minutes=1)).pk
    ).reservation
    _, gate_key = gate_create(lot=lot, name="North entrance")
    ids = {
        "lot_id": lot.slug,
        "reservation_id": pending.code,
        "code": pending.code,
        "confirmed": confirmed.code,
        "vehicle_id": str(vehicle.pk),
        "uidb64": urlsafe_base64_encode(force_bytes(driver.pk)),
    }
    signed_in = Client().post(
        "/api/v1/auth/token",
        {"email": driver.email, "password": "correct horse battery"},
        content_type=JSON,
    )
    # After signing in: a reset token is void once the user has logged in since.
    driver.refresh_from_db()
    ids["token"] = default_token_generator.make_token(driver)
    return Doors(
        client=Client(raise_request_exception=False),
        driver_token=signed_in.json()["token"],
        gate_key=gate_key,
        ids=ids,
        addresses=itertools.count(1),
    )


class Failures(list):
    """Every answer that broke the rules, to report all of them at once."""

    def check(self, response, what: str, *, api: bool) -> None:
        status = response.status_code
        if status >= 500:
            self.append(f"{status} for {what}")
            return
        if not api or status < 400:  # the schema is YAML and the docs HTML
            return
        if not response.get("Content-Type", "").startswith(JSON):
            self.append(f"{status} not JSON for {what}: {response.content[:80]!r}")
            return
        body = response.json()
        if not (isinstance(body, dict) and isinstance(body.get("code"), str)):
            self.append(f"{status} without a code for {what}: {body!r:.80}")


# --- the API, every endpoint the URL resolver knows ---------------------------------------


def _routes(patterns=None, prefix: str = ""):
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def _methods(view) -> list[str]:
    cls = getattr(view, "cls", None) or getattr(view, "view_class", None)
    if cls is None:  # a function view: it says itself which methods it takes
        return ["get", "post"]
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)]


API_ENDPOINTS = [
    (route, method)
    for route, view in _routes()
    if route.startswith("api/")
    for method in _methods(view)
]
WEBSITE_ROUTES = [
    route
    for route, _ in _routes()
    # Operations' endpoints (health, readiness, metrics) answer 503 by design
    # when a service is down, and take no input.
    if not route.startswith(("api/", "admin/", "payments/", "healthz", "readyz", "metrics"))
]

_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")


def _path(route: str, ids: dict[str, str], default: str = "1") -> str:
    # An id this module does not make (yet): a number, so that the route still matches.
    return "/" + _PARAM.sub(lambda m: ids.get(m.group(1), default), route)


_SCHEMA: dict = {}


def _schema(doors: Doors) -> dict:
    if not _SCHEMA:  # the same for every test: generated once
        _SCHEMA.update(doors.send("get", "/api/v1/schema/?format=json").json())
    return _SCHEMA


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


# A good value for every field an API body has, so that each field can be
# spoiled alone; a new field without one here fails the test (add it).
GOOD_FIELDS = {
    "email": "fuzz@example.com",
    "password": "correct horse battery",
    "full_name": "Fuzz",
    "lot_id": "paris-centre",
    "vehicle_type": "car",
    "vehicle_plate": "FZ-001-ZZ",
    "payment_token": "pm_card_visa",
    "plate": "AB-123-CD",
    "features": ["covered"],
    "vehicle_height_cm": 180,
}


def _good_body(schema: dict, route: str, method: str, doors: Doors) -> dict | None:
    operation = schema["paths"].get("/" + _PARAM.sub(r"{\1}", route), {}).get(method, {})
    content = operation.get("requestBody", {}).get("content", {}).get(JSON)
    if not content:
        return None
    start = timezone.now() + timedelta(hours=1)
    good = {
        **GOOD_FIELDS,
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
        "time": timezone.now().isoformat(),
        "reservation_id": doors.ids["confirmed"],
    }
    properties = _resolve(schema, content["schema"]).get("properties", {})
    return {name: good[name] for name in properties}


def _auths(doors: Doors) -> dict[str, str | None]:
    return {
        "anonymous": None,
        "driver": f"Bearer {doors.driver_token}",
        "gate": f"Bearer {doors.gate_key}",
        "junk-bearer": "Bearer \x00\xe9" + "x" * 5000,
        "junk-scheme": "Basic !!!",
    }


def _query_names(schema: dict, route: str, method: str) -> list[str]:
    operation = schema["paths"].get("/" + _PARAM.sub(r"{\1}", route), {}).get(method, {})
    named = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
    return [*named, "cursor", "page_size", "format"]


@pytest.mark.parametrize(
    ("route", "method"),
    [
        pytest.param(route, method, marks=[CALLS_STRIPE] if "complete" in route else [])
        for route, method in API_ENDPOINTS
    ],
    ids=lambda v: v,
)
def test_no_malformed_request_makes_an_api_endpoint_fail(doors, route, method):
    failures = Failures()
    schema = _schema(doors)
    path = _path(route, doors.ids)
    auths = _auths(doors)

    # A body matters where one is read; elsewhere it is sent as anyone and as a driver.
    senders = auths if method in ("post", "put", "patch") else ("anonymous", "driver")
    for (name, body, content_type), who in itertools.product(JUNK_BODIES, senders):
        response = doors.send(method, path, body, content_type, auths[who])
        failures.check(response, f"{method} {path} {name} as {who}", api=True)

    good = _good_body(schema, route, method, doors)
    for field, value in itertools.product(good or {}, JUNK_JSON_VALUES):
        body = json.dumps({**good, field: value})
        for who in ("driver", "gate", "anonymous"):
            response = doors.send(method, path, body, JSON, auths[who])
            failures.check(response, f"{method} {path} {field}={value!r:.30} as {who}", api=True)

    for name, value in itertools.product(_query_names(schema, route, method), JUNK_RAW_VALUES):
        for who in ("driver", "anonymous"):
            response = doors.send(method, f"{path}?{name}={value}", auth=auths[who])
            failures.check(response, f"{method} {path}?{name}={value:.30} as {who}", api=True)
    for other in ("options", "head", "trace"):  # methods no view here is written for
        failures.check(doors.send(other, path), f"{other} {path}", api=other != "head")
    many = "&".join(f"p{n}=%00" for n in range(1001))
    failures.check(doors.send(method, f"{path}?{many}"), f"{method} {path} 1001 params", api=True)

    if "<" in route:  # junk in the address itself
        for value in ("%00", "x" * 3000, "%ED%A0%80", "..%2F..%2Fetc"):
            junk_path = _path(route, {}, default=value)
            for who in ("driver", "gate"):
                response = doors.send(method, junk_path, "{}", JSON, auths[who])
                failures.check(response, f"{method} {junk_path:.60} as {who}", api=True)

    assert not failures, "\n".join(failures)


def test_every_api_endpoint_is_fuzzed():
    fuzzed = {route for route, _ in API_ENDPOINTS}

    assert {"api/v1/auth/token", "api/v1/reservations", "api/v1/gate/arrivals"} <= fuzzed
    assert len(API_ENDPOINTS) >= 12


# --- the website: every page, and every form on it ----------------------------------------


class _Forms(HTMLParser):
    """The forms of a page as a browser would submit them: action, method and
    the controls' names with their current values."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append(
                {"action": a.get("action") or "", "method": (a.get("method") or "get").lower()}
            )
            self.forms[-1]["fields"] = {}
        if not self.forms or ("name" not in a and tag != "option"):
            return
        fields = self.forms[-1]["fields"]
        if tag == "input" and a.get("type") not in ("submit", "button"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                fields.setdefault(a["name"], "")
            else:
                fields[a["name"]] = a.get("value") or ""
        elif tag == "textarea":
            fields[a["name"]] = ""
        elif tag == "select":
            self._select = a["name"]
            fields[a["name"]] = None
        elif tag == "option" and self._select and (fields[self._select] is None or "selected" in a):
            fields[self._select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def _forms(html: str) -> list[dict]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def _encode(fields: dict[str, str], junk_field: str, raw: str) -> str:
    parts = [f"{quote(k)}={quote(v or '')}" for k, v in fields.items() if k != junk_field]
    return "&".join([*parts, f"{quote(junk_field)}={raw}"])


_FUZZED_FORMS: set[tuple] = set()
QUERY_NAMES = ("vehicle_type", "start", "end", "city", "next", "q")


@pytest.mark.parametrize(
    "route",
    [
        pytest.param(route, marks=[CALLS_STRIPE] if "/pay/" in route else [])
        for route in WEBSITE_ROUTES
    ],
    ids=lambda v: v or "home",
)
@pytest.mark.parametrize("logged_in", [True, False], ids=["driver", "anonymous"])
def test_no_malformed_request_makes_a_website_page_fail(doors, driver, route, logged_in):
    failures = Failures()
    path = _path(route, doors.ids)
    if route.endswith("<token>/"):
        # A real reset link puts its token in the session and moves to this form.
        path = doors.send("get", path).get("Location", path)

    def login():
        if logged_in:
            doors.client.force_login(driver)

    login()
    for name, body, content_type in JUNK_BODIES:
        response = doors.send("post", path, body, content_type)
        failures.check(response, f"post {path} {name}", api=False)
        login()  # a junk body may still log out
    # The window and search parameters pages read from their address, as a
    # page and as its live (htmx) update.
    for method, value, htmx in [
        *(("get", value, htmx) for value in JUNK_RAW_VALUES for htmx in ("", "true")),
        *(("post", value, "") for value in JUNK_RAW_VALUES[:4]),
    ]:
        query = "&".join(f"{name}={value}" for name in QUERY_NAMES)
        response = doors.send(method, f"{path}?{query}", HTTP_HX_REQUEST=htmx)
        failures.check(response, f"{method} {path}?{query:.40} htmx={htmx}", api=False)

    if "<" in route and not route.endswith("<token>/"):  # junk in the address itself
        for value, method in itertools.product(("%00", "9" * 30, "x" * 3000), ("get", "post")):
            junk_path = _path(route, {}, default=value)
            response = doors.send(method, junk_path, "", FORM)
            failures.check(response, f"{method} {junk_path:.60}", api=False)

    page = doors.send("get", path)
    for form in _forms(page.content.decode()) if page.status_code == 200 else []:
        action = form["action"] or path
        seen = (logged_in, urlsplit(action).path, form["method"], *sorted(form["fields"]))
        if urlsplit(action).path.endswith("/logout/") or seen in _FUZZED_FORMS:
            continue  # logging out would end the session the rest is sent in
        _FUZZED_FORMS.add(seen)  # the search form is on more than one page
        for field, value in itertools.product(form["fields"], JUNK_RAW_VALUES):
            if field == "csrfmiddlewaretoken":
                continue
            data = _encode(form["fields"], field, value)
            if form["method"] == "post":
                response = doors.send("post", action, data, FORM)
            else:
                response = doors.send("get", f"{action}?{data}")
            failures.check(response, f"{form['method']} {action} {field}={value:.30}", api=False)
            login()

    assert not failures, "\n".join(failures)


def test_every_website_address_that_takes_a_form_is_among_those_fuzzed():
    assert {
        "accounts/signup/",
        "accounts/login/",
        "accounts/password-reset/",
        "accounts/reset/<uidb64>/<token>/",
        "account/",
        "account/vehicles/<int:vehicle_id>/",
        "lots/<str:lot_id>/reserve/",
        "reservations/<str:code>/pay/",
        "reservations/<str:code>/cancel/",
        "search/",
    } <= set(WEBSITE_ROUTES)


# --- the Stripe webhook -------------------------------------------------------------------

WEBHOOK = "/payments/webhooks/stripe/"
WEBHOOK_SECRET = "whsec_test_parkspot"


def _signature(body: str | bytes) -> str:
    payload = body if isinstance(body, bytes) else body.encode()
    timestamp = int(time.time())
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(WEBHOOK_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@CALLS_STRIPE
def test_no_malformed_webhook_makes_it_fail(doors):
    failures = Failures()
    event = {
        "id": "evt_fuzz",
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_fuzz", "payment_intent": "pi_fuzz"}},
    }

    def send(body, content_type, what):
        for signed in (True, False):
            extra = {"HTTP_STRIPE_SIGNATURE": _signature(body)} if signed else {}
            response = doors.send("post", WEBHOOK, body, content_type, **extra)
            failures.check(response, f"{what} {'signed' if signed else 'unsigned'}", api=True)

    for name, body, content_type in JUNK_BODIES:
        send(body, content_type, name)
    fields = [
        ("id",),
        ("type",),
        ("data",),
        ("data", "object"),
        ("data", "object", "id"),
        ("data", "object", "payment_intent"),
    ]
    numbers = itertools.count(1)
    for path, value in itertools.product(fields, JUNK_JSON_VALUES):
        # Each its own event, or all but the first would be answered as duplicates.
        spoiled = {**json.loads(json.dumps(event)), "id": f"evt_fuzz_{next(numbers)}"}
        inner = spoiled
        for key in path[:-1]:
            inner = inner[key]
        inner[path[-1]] = value
        send(json.dumps(spoiled), JSON, f"{'.'.join(path)}={value!r:.30}")
    for header in ("t=1,v1=\xe9", "t=" + "9" * 5000, "\x00", "v1=" + "a" * 10_000):
        response = doors.send("post", WEBHOOK, json.dumps(event), HTTP_STRIPE_SIGNATURE=header)
        failures.check(response, f"signature {header:.30}", api=True)
    for method in ("get", "put", "delete"):
        failures.check(doors.send(method, WEBHOOK), f"{method} webhook", api=False)

    assert not failures, "\n".join(failures)
    assert not StripeEvent.objects.exclude(event_id__startswith="evt_fuzz_").exists()
