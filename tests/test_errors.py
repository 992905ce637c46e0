"""What a request gets when something below it fails (triage.errors)."""

from __future__ import annotations

import json

import pytest
from django.db import DatabaseError, OperationalError
from django.test import Client, RequestFactory

from triage.errors import server_error


def answer_while_handling(error: Exception, path: str, **headers: str) -> object:
    request = RequestFactory().get(path, headers=headers)
    try:
        raise error
    except Exception:
        return server_error(request)


def test_an_unreachable_database_is_a_503_to_retry() -> None:
    wrapped = DatabaseError("query failed")
    wrapped.__cause__ = OperationalError("connection refused")
    for error in (OperationalError("server closed the connection"), wrapped):
        response = answer_while_handling(error, "/v2/enqueue")
        assert response.status_code == 503  # type: ignore[attr-defined]
        assert response["Retry-After"] == "5"  # type: ignore[index]
        body = json.loads(response.content)  # type: ignore[attr-defined]
        assert body["title"] == "Service unavailable"


@pytest.mark.parametrize("error", [ValueError("bug"), DatabaseError("syntax error")])
def test_anything_else_is_a_plain_500(error: Exception) -> None:
    page = answer_while_handling(error, "/incidents/1", Accept="text/html")
    assert page.status_code == 500  # type: ignore[attr-defined]
    assert b"Server error" in page.content  # type: ignore[attr-defined]
    assert not page.has_header("Retry-After")  # type: ignore[attr-defined]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/v1/incidents/open", "application/problem+json"), ("/login", "text/html")],
)
def test_a_host_header_that_is_no_host_is_a_400_in_the_paths_own_shape(
    path: str, content_type: str
) -> None:
    # schemathesis sent "Host: i-:" to the API and got Django's HTML page.
    response = Client().get(path, headers={"host": "i-:"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith(content_type)
