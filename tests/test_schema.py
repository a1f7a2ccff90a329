"""The OpenAPI schema at /api/v1/schema/ and the docs at /api/v1/docs/ (DESIGN §6)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
import yaml
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.urls import URLPattern, URLResolver
from drf_spectacular.validation import validate_schema

from config import urls

SCHEMA = "/api/v1/schema/"
DOCS = "/api/v1/docs/"
# The endpoints of DESIGN §6 that exist today; anything added under /api/v1/ is
# found by walking the URLconf below.
CORE_PATHS = {
    "/api/v1/auth/register": {"post"},
    "/api/v1/auth/token": {"post", "delete"},
    "/api/v1/lots": {"get"},
    "/api/v1/lots/{lot_id}": {"get"},
    "/api/v1/lots/{lot_id}/availability": {"get"},
    "/api/v1/reservations": {"get", "post"},
    "/api/v1/reservations/{reservation_id}": {"get"},
    "/api/v1/reservations/{reservation_id}/cancel": {"post"},
}
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}
NOT_IN_SCHEMA = {"schema", "docs"}

pytestmark = pytest.mark.django_db


def _openapi_path(route: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def api_endpoints() -> dict[str, set[str]]:
    """Every route under /api/v1/ in the URLconf, with the HTTP methods its view handles."""
    found: dict[str, set[str]] = {}

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("api/v1/"):
                if pattern.name in NOT_IN_SCHEMA:
                    continue
                view = getattr(pattern.callback, "cls", None)
                if view is None:
                    continue
                methods = {m for m in HTTP_METHODS if hasattr(view, m)}
                found["/" + _openapi_path(route)] = methods

    walk(urls.urlpatterns, "")
    return found


def test_the_urlconf_walk_finds_the_core_endpoints():
    endpoints = api_endpoints()

    for path, methods in CORE_PATHS.items():
        assert endpoints.get(path) == methods, path


@pytest.fixture
def schema(api) -> dict:
    response = api.get(SCHEMA, {"format": "json"})
    assert response.status_code == 200, response.content
    return response.json()


def test_the_schema_is_yaml_by_default_and_the_same_document_as_json(api, schema):
    response = api.get(SCHEMA)

    assert response.status_code == 200
    assert "openapi" in response["Content-Type"] or "yaml" in response["Content-Type"]
    assert yaml.safe_load(response.content) == schema


def test_the_schema_is_a_valid_openapi_document(schema):
    validate_schema(schema)  # raises on any violation of the OpenAPI 3 meta-schema
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "ParkSpot API"
    assert schema["info"]["version"]


def test_the_schema_documents_every_api_endpoint_and_method(schema):
    documented = {
        path: {method for method in operations if method in HTTP_METHODS}
        for path, operations in schema["paths"].items()
    }

    for path, methods in {**CORE_PATHS, **api_endpoints()}.items():
        assert path in documented, f"{path} is missing from the schema"
        assert methods <= documented[path], (path, methods, documented[path])


def test_the_schema_documents_no_api_path_that_does_not_exist(schema):
    documented = {path for path in schema["paths"] if path.startswith("/api/v1/")}

    assert documented <= set(api_endpoints())


def test_the_schema_is_served_without_an_account(api):
    assert api.get(SCHEMA).status_code == 200


def test_the_schema_describes_bearer_tokens_and_which_endpoints_are_public(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The token from POST /api/v1/auth/token.",
    }

    def security(path: str, method: str) -> list:
        return schema["paths"][path][method].get("security", [])

    assert {"bearerAuth": []} in security("/api/v1/reservations", "post")
    assert {"bearerAuth": []} in security("/api/v1/reservations/{reservation_id}", "get")
    for path, method in [
        ("/api/v1/auth/register", "post"),
        ("/api/v1/auth/token", "post"),
        ("/api/v1/lots", "get"),
        ("/api/v1/lots/{lot_id}/availability", "get"),
    ]:
        assert not any("bearerAuth" in item for item in security(path, method)), path


def test_the_schema_documents_the_idempotency_key_header(schema):
    parameters = schema["paths"]["/api/v1/reservations"]["post"]["parameters"]

    assert {"name": "Idempotency-Key", "in": "header"}.items() <= next(
        p for p in parameters if p["name"] == "Idempotency-Key"
    ).items()


def test_the_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn turns every drf-spectacular warning (an endpoint it cannot
    # describe) into an error; --validate checks the result against the meta-schema.
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml")
    )

    assert yaml.safe_load((tmp_path / "schema.yaml").read_text())["paths"]


# --- docs -----------------------------------------------------------------------------


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        for name, value in attrs:
            if name in {"src", "href"} and value:
                self.urls.append(value)


def test_the_docs_page_is_html_that_loads_only_local_static_assets(client):
    response = client.get(DOCS)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    parser = _Assets()
    parser.feed(html)
    assert parser.urls, "the docs page loads no assets at all"
    static_prefix = "/" + settings.STATIC_URL.lstrip("/")
    for url in parser.urls:
        assert not re.match(r"^([a-z][a-z0-9+.-]*:)?//", url, re.I), f"remote asset {url}"
        assert url.startswith(static_prefix), url
        path = url[len(static_prefix) :].split("?")[0]
        assert finders.find(path), f"{url} is not a static file of the project"
    for cdn in ("cdn.", "unpkg", "jsdelivr", "cdnjs", "googleapis", "http://", "https://"):
        assert cdn not in html, cdn


def test_the_docs_page_points_at_the_local_schema(client):
    html = client.get(DOCS).content.decode()

    assert SCHEMA in html
    assert "swagger-ui-bundle.js" in html
