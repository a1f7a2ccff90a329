"""The API fuzzed against its own OpenAPI schema (schemathesis): whatever a
client sends, the answer is never a server error."""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from config.wsgi import application
from parking.services import api_token_create

# Payment completion needs Stripe, which this test does not run: it answers 503
# by design then. tests/payments covers it against localstripe.
NEEDS_STRIPE = r"/complete$"

pytestmark = pytest.mark.django_db


@pytest.fixture
def wsgi_app():
    # Like Django's test client: keep the test's connection (and its
    # transaction) open across requests made straight to the WSGI app.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield application
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def test_no_request_makes_the_api_fail(wsgi_app, lot, driver):
    token = api_token_create(user=driver).token
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", wsgi_app).exclude(
        path_regex=NEEDS_STRIPE
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    # DELETE /auth/token revokes the token every other call is made with: last.
    operations.sort(key=lambda op: (op.method.upper(), op.path) == ("DELETE", "/api/v1/auth/token"))

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def never_a_server_error(case):
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        never_a_server_error()
