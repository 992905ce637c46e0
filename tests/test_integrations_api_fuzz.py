"""Property-based testing of /v1 from its own OpenAPI document (schemathesis).

Every operation gets generated requests — valid ones and deliberately invalid
ones — sent in-process through Django's WSGI handler with a write token. Whatever
comes in, the API must not answer 5xx, and its answers must match what the
document promises (status codes, content types, response bodies).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from accounts.tokens import NewToken
from incidents.models import Service
from tests.examples import examples
from tests.factories import IncidentFactory

EXAMPLES = examples(25)  # fewer under `make check`: tests/examples.py


# Loaded once, in-process, from the document the API serves.
schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", WSGIHandler())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES,
    database="none",
)


@pytest.fixture
def requests_keep_the_test_connection() -> Iterator[None]:
    # Like Django's test client: a request must not close the test's database
    # connection (it holds the transaction the test runs in).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(web: Service, redis: Any) -> None:
    # A few incidents so that some generated ids and filters find something.
    for severity in ("critical", "warning"):
        IncidentFactory(service=web, severity=severity)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_generated_request_makes_the_api_fail(
    case: Any, seeded: None, write_token: NewToken, requests_keep_the_test_connection: None
) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {write_token.raw}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
