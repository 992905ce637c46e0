"""POST /incidents from API clients (JSON + token) and from the web form."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from accounts.tokens import NewToken
from incidents import services
from incidents.models import EventKind, Incident, Service, TimelineEvent

pytestmark = pytest.mark.django_db


def post_json(client: Client, body: Any, token: NewToken | None = None, **headers: str) -> Any:
    if token is not None:
        headers["Authorization"] = f"Bearer {token.raw}"
    return client.post(
        "/incidents",
        data=body if isinstance(body, (str, bytes)) else json.dumps(body),
        content_type="application/json",
        headers=headers,
    )


GOOD = {"title": "Checkout returns 502", "service": "web", "severity": "critical"}


def post_at_once(n: int, body: Any, token: NewToken, **headers: str) -> list[Any]:
    """The same POST from n threads released together, each on its own
    connection; the responses in the order they came back."""
    barrier = threading.Barrier(n)
    responses: list[Any] = []
    lock = threading.Lock()

    def send() -> None:
        try:
            barrier.wait()
            response = post_json(Client(), body, token, **headers)
            with lock:
                responses.append(response)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=send) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return responses


def test_an_api_client_opens_an_incident_and_gets_201_with_it(
    client: Client, web: Service, write_token: NewToken
) -> None:
    response = post_json(client, {**GOOD, "details": "since 14:00 UTC"}, write_token)
    assert response.status_code == 201
    body = response.json()
    assert body["title"] == "Checkout returns 502"
    assert body["service"] == {"slug": "web", "name": "Web shop"}
    assert body["severity"] == "critical"
    assert body["severity_label"] == "SEV1"
    assert body["status"] == "triggered"
    assert body["url"].endswith(f"/incidents/{body['id']}")
    assert response["Location"] == f"/incidents/{body['id']}"
    incident = Incident.objects.get()
    assert incident.source == "api"
    assert incident.opened_by is not None
    assert incident.opened_by.username == "alice"


def test_the_same_idempotency_key_and_body_returns_200_with_the_same_incident(
    client: Client, web: Service, write_token: NewToken
) -> None:
    first = post_json(client, GOOD, write_token, **{"Idempotency-Key": "deploy-42"})
    again = post_json(client, GOOD, write_token, **{"Idempotency-Key": "deploy-42"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Incident.objects.count() == 1


def test_the_key_may_also_come_in_the_body(
    client: Client, web: Service, write_token: NewToken
) -> None:
    body = {**GOOD, "idempotency_key": "k-1"}
    assert post_json(client, body, write_token).status_code == 201
    assert post_json(client, body, write_token).status_code == 200


def test_the_same_key_with_a_different_body_is_a_clear_422(
    client: Client, web: Service, write_token: NewToken
) -> None:
    post_json(client, GOOD, write_token, **{"Idempotency-Key": "deploy-42"})
    other = post_json(
        client, {**GOOD, "title": "Something else"}, write_token, **{"Idempotency-Key": "deploy-42"}
    )
    assert other.status_code == 422
    assert other["Content-Type"] == "application/problem+json"
    assert "already used" in other.json()["detail"]
    assert Incident.objects.count() == 1


def test_a_known_dedup_key_joins_the_open_incident(
    client: Client, web: Service, write_token: NewToken
) -> None:
    first = post_json(client, {**GOOD, "dedup_key": "checkout"}, write_token)
    again = post_json(client, {**GOOD, "dedup_key": "checkout"}, write_token)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["deduplicated"] is True
    assert TimelineEvent.objects.filter(kind=EventKind.ALERT).count() == 1


def test_a_retried_request_that_joined_an_incident_is_not_counted_twice(
    client: Client, web: Service, write_token: NewToken, alice: Any
) -> None:
    """The key of a request that joined an open incident is kept: a retry gets
    the same answer, the key with another body is refused, and a retry after
    the incident was resolved does not open a new one."""
    body = {**GOOD, "dedup_key": "checkout"}
    opened = post_json(client, body, write_token).json()
    joined = post_json(client, body, write_token, **{"Idempotency-Key": "retry-7"})
    retried = post_json(client, body, write_token, **{"Idempotency-Key": "retry-7"})
    assert (joined.status_code, retried.status_code) == (200, 200)
    assert joined.json()["id"] == retried.json()["id"] == opened["id"]
    assert retried.json()["deduplicated"] is True
    assert TimelineEvent.objects.filter(kind=EventKind.ALERT).count() == 1

    other = post_json(
        client, {**body, "title": "Something else"}, write_token, **{"Idempotency-Key": "retry-7"}
    )
    assert other.status_code == 422
    assert f"incident #{opened['id']}" in other.json()["detail"]

    services.resolve_incident(Incident.objects.get(), actor=alice)
    late = post_json(client, body, write_token, **{"Idempotency-Key": "retry-7"})
    assert late.status_code == 200
    assert late.json()["id"] == opened["id"]
    assert Incident.objects.count() == 1
    assert TimelineEvent.objects.filter(kind=EventKind.ALERT).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "title": ""}, "title"),
        ({**GOOD, "title": "x" * 201}, "title"),
        ({**GOOD, "service": "nope"}, "service"),
        ({**GOOD, "severity": "sev0"}, "severity"),
        ({"title": "no service"}, "service"),
    ],
)
def test_invalid_fields_get_422_with_field_errors_and_nothing_is_written(
    client: Client, web: Service, write_token: NewToken, body: dict[str, str], field: str
) -> None:
    response = post_json(client, body, write_token)
    assert response.status_code == 422
    problem = response.json()
    assert problem["status"] == 422
    assert field in problem["errors"]
    assert Incident.objects.count() == 0


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", "null", b"\xff\xfe"])
def test_malformed_json_is_a_400(
    client: Client, web: Service, write_token: NewToken, body: str | bytes
) -> None:
    response = post_json(client, body, write_token)
    assert response.status_code == 400
    assert response.json()["title"] == "Malformed JSON"
    assert Incident.objects.count() == 0


def test_an_unsupported_content_type_is_a_415(
    client: Client, web: Service, write_token: NewToken
) -> None:
    response = client.post(
        "/incidents",
        data="title=x",
        content_type="text/plain",
        headers={"Authorization": f"Bearer {write_token.raw}"},
    )
    assert response.status_code == 415
    assert Incident.objects.count() == 0


def test_an_oversized_body_is_a_413(client: Client, web: Service, write_token: NewToken) -> None:
    response = post_json(client, {**GOOD, "details": "x" * 600_000}, write_token)
    assert response.status_code == 413
    assert Incident.objects.count() == 0


def test_anonymous_api_calls_get_401_problem_json(client: Client, web: Service) -> None:
    response = post_json(client, GOOD)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer tri_not-a-real-token", "Basic YWxpY2U6cHc=", "Bearer"])
def test_a_bad_token_gets_401(client: Client, web: Service, header: str) -> None:
    response = client.post(
        "/incidents",
        data=json.dumps(GOOD),
        content_type="application/json",
        headers={"Authorization": header},
    )
    assert response.status_code == 401
    assert Incident.objects.count() == 0


def test_a_read_only_token_cannot_open_incidents(
    client: Client, web: Service, read_token: NewToken
) -> None:
    response = post_json(client, GOOD, read_token)
    assert response.status_code == 403
    assert "write" in response.json()["detail"]
    assert Incident.objects.count() == 0


def test_the_web_form_opens_an_incident_and_redirects_to_it(
    alice_client: Client, web: Service
) -> None:
    response = alice_client.post("/incidents", {**GOOD, "idempotency_key": "form-1"})
    incident = Incident.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/incidents/{incident.pk}"
    assert incident.source == "ui"
    # A double submit of the same rendered form opens nothing new.
    alice_client.post("/incidents", {**GOOD, "idempotency_key": "form-1"})
    assert Incident.objects.count() == 1


def test_the_web_form_shows_field_errors(alice_client: Client, web: Service) -> None:
    response = alice_client.post("/incidents", {**GOOD, "title": ""})
    assert response.status_code == 422
    assert b"This field is required" in response.content
    assert Incident.objects.count() == 0


def test_the_htmx_form_answers_with_a_fresh_form_and_a_refresh_event(
    alice_client: Client, web: Service
) -> None:
    response = alice_client.post("/incidents", GOOD, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "incidents-changed" in json.loads(response["HX-Trigger"])
    assert b"Opened" in response.content
    assert b"<html" not in response.content


def test_the_new_incident_page_opens_the_incident_and_goes_to_it(
    alice_client: Client, web: Service
) -> None:
    """On its own page the form submits plainly, so opening an incident lands
    on that incident instead of a blank form; the dashboard, which loads the
    same form with htmx, keeps it inline."""
    page = alice_client.get("/incidents/new").content.decode()
    form = page.split('<form id="new-incident"', 1)[1].split(">", 1)[0]
    assert 'method="post"' in form
    assert "hx-post" not in form
    inline = alice_client.get("/incidents/new", headers={"HX-Request": "true"}).content.decode()
    assert 'hx-post="/incidents"' in inline.split('<form id="new-incident"', 1)[1].split(">", 1)[0]

    response = alice_client.post("/incidents", {**GOOD, "idempotency_key": "page-1"}, follow=True)
    incident = Incident.objects.get()
    assert response.redirect_chain == [(f"/incidents/{incident.pk}", 302)]
    assert incident.title in response.content.decode()


def test_the_form_needs_a_csrf_token(alice: Any, web: Service) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/incidents", GOOD).status_code == 403
    assert Incident.objects.count() == 0


def test_anonymous_browsers_are_sent_to_the_login_page(client: Client, web: Service) -> None:
    response = client.post("/incidents", GOOD)
    assert response.status_code == 302
    assert response["Location"].startswith("/login")


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_identical_requests_open_exactly_one_incident(
    web: Service, write_token: NewToken
) -> None:
    responses = post_at_once(20, GOOD, write_token, **{"Idempotency-Key": "storm-1"})
    statuses = [response.status_code for response in responses]
    ids = {response.json()["id"] for response in responses}

    assert sorted(statuses) == [200] * 19 + [201]
    assert len(ids) == 1
    assert Incident.objects.count() == 1
    assert TimelineEvent.objects.filter(kind=EventKind.OPENED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_retries_joining_an_open_incident_add_one_alert_repeat(
    web: Service, write_token: NewToken
) -> None:
    body = {**GOOD, "dedup_key": "checkout"}
    opened = post_json(Client(), body, write_token).json()
    responses = post_at_once(20, body, write_token, **{"Idempotency-Key": "storm-2"})
    answers = [(response.status_code, response.json()["id"]) for response in responses]

    assert answers == [(200, opened["id"])] * 20
    assert TimelineEvent.objects.filter(kind=EventKind.ALERT).count() == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_alerts_with_one_dedup_key_open_one_incident(
    web: Service, write_token: NewToken
) -> None:
    post_at_once(20, {**GOOD, "dedup_key": "disk-full"}, write_token)

    assert Incident.objects.count() == 1
    incident = Incident.objects.get()
    assert incident.timeline.filter(kind=EventKind.ALERT).count() == 19
