"""The /v1 JSON API: what automation reads and does, and its errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from redis import Redis

from accounts.tokens import NewToken, create_api_token, revoke_api_token
from incidents import services
from incidents.models import EventKind, Incident, Service, TimelineEvent
from paging.models import Page, Rotation, RotationMember, Schedule
from tests.factories import IncidentFactory, ServiceFactory, UserFactory, policy_with_levels

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def auth(token: NewToken) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.raw}"}


def get(client: Client, path: str, token: NewToken, **params: Any) -> Any:
    return client.get(path, params, headers=auth(token))


def post(client: Client, path: str, token: NewToken, body: Any = None, **headers: str) -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body or {})
    return client.post(
        path, data=data, content_type="application/json", headers={**auth(token), **headers}
    )


def test_open_incidents_come_most_severe_first_with_paging_and_links(
    client: Client, web: Service, read_token: NewToken, redis: Redis
) -> None:
    warning = IncidentFactory(service=web, severity="warning", title="slow", now=T0)
    critical = IncidentFactory(service=web, severity="critical", title="down", now=T0)
    resolved = IncidentFactory(service=web, severity="critical", title="old", now=T0)
    services.resolve_incident(resolved, actor=None)

    response = get(client, "/v1/incidents/open", read_token)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [item["id"] for item in body["items"]] == [critical.pk, warning.pk]
    first = body["items"][0]
    assert first["service"] == {"slug": "web", "name": "Web shop"}
    assert first["paging"] == {"level": 0, "next_escalation_at": None, "paged": []}
    assert first["links"]["ui"].endswith(f"/incidents/{critical.pk}")
    assert first["links"]["api"].endswith(f"/v1/incidents/{critical.pk}")
    assert body["next"] is None


def test_open_incidents_page_through_with_a_cursor(
    client: Client, web: Service, read_token: NewToken, redis: Redis
) -> None:
    made = [
        IncidentFactory(service=web, severity=severity, now=T0 + timedelta(minutes=i))
        for i, severity in enumerate(["info", "critical", "error", "critical", "warning"])
    ]
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        body = get(client, "/v1/incidents/open", read_token, **params).json()
        seen += [item["id"] for item in body["items"]]
        if not body["next_cursor"]:
            break
        assert "cursor=" in body["next"]
        params["cursor"] = body["next_cursor"]
    expected = [made[1].pk, made[3].pk, made[2].pk, made[4].pk, made[0].pk]
    assert seen == expected


def test_the_incident_list_filters_and_pages_newest_first(
    client: Client, web: Service, read_token: NewToken, redis: Redis
) -> None:
    other = ServiceFactory(slug="db", name="Database")
    for minute in range(5):
        IncidentFactory(service=web, severity="error", now=T0 + timedelta(minutes=minute))
    IncidentFactory(service=other, severity="critical", title="replica lag", now=T0)

    page = get(client, "/v1/incidents", read_token, service="web", limit=3).json()
    assert len(page["items"]) == 3
    rest = get(client, "/v1/incidents", read_token, service="web", cursor=page["next_cursor"])
    ids = [item["id"] for item in page["items"] + rest.json()["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 5

    found = get(client, "/v1/incidents", read_token, q="replica", severity="critical").json()
    assert [item["title"] for item in found["items"]] == ["replica lag"]
    assert get(client, "/v1/incidents", read_token, status="resolved").json()["items"] == []


def test_one_incident_comes_with_its_timeline(
    client: Client, web: Service, read_token: NewToken, alice: Any, redis: Redis
) -> None:
    incident = IncidentFactory(service=web)
    services.add_note(incident, actor=alice, text="looking")
    body = get(client, f"/v1/incidents/{incident.pk}", read_token).json()
    # The web service has no policy: "nobody paged" comes with the opening.
    assert [event["kind"] for event in body["timeline"]] == ["opened", "paged", "note"]
    assert body["timeline"][2]["actor"] == "alice"


def test_actions_change_the_incident_and_record_who(
    client: Client, web: Service, write_token: NewToken, redis: Redis
) -> None:
    incident = IncidentFactory(service=web)
    base = f"/v1/incidents/{incident.pk}"
    acked = post(client, f"{base}/acknowledge", write_token)
    assert acked.status_code == 200
    assert acked.json()["status"] == "acknowledged"
    assert acked.json()["acknowledged_by"] == "alice"
    note = post(client, f"{base}/notes", write_token, {"text": "rebooting db1"})
    assert note.status_code == 201
    assert note.json()["message"] == "rebooting db1"
    resolved = post(client, f"{base}/resolve", write_token)
    assert resolved.json()["status"] == "resolved"
    kinds = list(incident.timeline.order_by("created_at", "pk").values_list("kind", flat=True))
    assert kinds == [
        EventKind.OPENED,
        EventKind.PAGED,  # the web service has no policy
        EventKind.ACKNOWLEDGED,
        EventKind.NOTE,
        EventKind.RESOLVED,
    ]


def test_an_impossible_action_is_a_409_problem(
    client: Client, web: Service, write_token: NewToken, redis: Redis
) -> None:
    incident = IncidentFactory(service=web)
    services.resolve_incident(incident, actor=None)
    for action in ("acknowledge", "resolve", "escalate"):
        response = post(client, f"/v1/incidents/{incident.pk}/{action}", write_token)
        assert response.status_code == 409, action
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == 409


def test_an_unknown_incident_is_a_404_problem(
    client: Client, read_token: NewToken, write_token: NewToken
) -> None:
    assert get(client, "/v1/incidents/999999", read_token).status_code == 404
    response = post(client, "/v1/incidents/999999/acknowledge", write_token)
    assert response.status_code == 404
    assert response.json()["detail"] == "No incident #999999."


def test_creating_is_idempotent_with_an_idempotency_key(
    client: Client, web: Service, write_token: NewToken, redis: Redis
) -> None:
    body = {"title": "Checkout 502", "service": "web", "severity": "critical"}
    first = post(client, "/v1/incidents", write_token, body, **{"Idempotency-Key": "deploy-7"})
    again = post(client, "/v1/incidents", write_token, body, **{"Idempotency-Key": "deploy-7"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    changed = post(
        client,
        "/v1/incidents",
        write_token,
        {**body, "title": "x"},
        **{"Idempotency-Key": "deploy-7"},
    )
    assert changed.status_code == 422
    assert "already used" in changed.json()["detail"]
    assert Incident.objects.count() == 1
    assert Incident.objects.get().source == "api"


def test_a_dedup_key_joins_the_open_incident(
    client: Client, web: Service, write_token: NewToken, redis: Redis
) -> None:
    body = {"title": "Disk", "service": "web", "dedup_key": "disk"}
    post(client, "/v1/incidents", write_token, body)
    again = post(client, "/v1/incidents", write_token, body)
    assert again.status_code == 200
    assert again.json()["deduplicated"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"service": "web"}, "title"),
        ({"title": "", "service": "web"}, "title"),
        ({"title": "x" * 201, "service": "web"}, "title"),
        ({"title": "x", "service": "nope"}, "service"),
        ({"title": "x", "service": "web", "severity": "sev0"}, "severity"),
        ({"title": "x", "service": "web", "colour": "red"}, "colour"),
    ],
)
def test_invalid_input_is_a_422_problem_naming_the_field(
    client: Client, web: Service, write_token: NewToken, body: dict[str, Any], field: str
) -> None:
    response = post(client, "/v1/incidents", write_token, body)
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"], response.json()
    assert Incident.objects.count() == 0


@pytest.mark.parametrize("title", ["x\x00", "x\ud800"])
def test_a_nul_or_lone_surrogate_is_a_400_problem_naming_the_field(
    client: Client, web: Service, write_token: NewToken, title: str
) -> None:
    # Refused when the body is read, like on every JSON endpoint (it was a 422 for NUL).
    response = post(client, "/v1/incidents", write_token, {"title": title, "service": "web"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "title" in response.json()["errors"], response.json()
    assert Incident.objects.count() == 0


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": "many"},
        {"cursor": "garbage"},
        {"service": "nope"},
        {"cursor": "WzEsMl0"},
    ],
)
def test_bad_query_parameters_are_a_422(
    client: Client, read_token: NewToken, params: dict[str, Any]
) -> None:
    response = get(client, "/v1/incidents", read_token, **params)
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"


def test_a_bad_cursor_on_open_incidents_is_a_422(client: Client, read_token: NewToken) -> None:
    assert get(client, "/v1/incidents/open", read_token, cursor="WzEsMl0").status_code == 422


@pytest.mark.parametrize("body", ["{nope", b"\xff"])
def test_malformed_json_is_a_400_problem(
    client: Client, write_token: NewToken, body: str | bytes
) -> None:
    response = post(client, "/v1/incidents", write_token, body)
    assert response.status_code == 400
    assert response.json()["title"] == "Malformed JSON"


def test_an_oversized_body_is_a_413(client: Client, web: Service, write_token: NewToken) -> None:
    body = {"title": "x", "service": "web", "details": "x" * 600_000}
    response = post(client, "/v1/incidents", write_token, body)
    assert response.status_code == 413
    assert Incident.objects.count() == 0


def test_no_token_is_a_401_with_a_challenge(client: Client) -> None:
    response = client.get("/v1/incidents/open")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_is_a_401(client: Client, read_token: NewToken) -> None:
    revoke_api_token(read_token.token)
    assert get(client, "/v1/services", read_token).status_code == 401


def test_a_read_token_cannot_write(
    client: Client, web: Service, read_token: NewToken, redis: Redis
) -> None:
    incident = IncidentFactory(service=web)
    response = post(client, f"/v1/incidents/{incident.pk}/acknowledge", read_token)
    assert response.status_code == 403
    assert "write" in response.json()["detail"]
    incident.refresh_from_db()
    assert incident.status == "triggered"


def test_services_are_listed(client: Client, web: Service, read_token: NewToken) -> None:
    assert get(client, "/v1/services", read_token).json() == [
        {"slug": "web", "name": "Web shop", "description": ""}
    ]


def test_the_openapi_document_describes_every_operation(client: Client) -> None:
    document = client.get("/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "/v1/incidents/open" in document["paths"]
    assert document["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"
    create = document["paths"]["/v1/incidents"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])
    assert "application/problem+json" in create["responses"]["422"]["content"]


def test_the_interactive_docs_load_swagger_from_our_own_static_files(client: Client) -> None:
    page = client.get("/v1/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle" in page
    assert "cdn." not in page


def test_tokens_of_other_users_act_as_them(client: Client, web: Service, redis: Redis) -> None:
    from tests.factories import UserFactory

    bob = create_api_token(user=UserFactory(username="bob"), name="bot", scope="write")
    incident = IncidentFactory(service=web)
    post(client, f"/v1/incidents/{incident.pk}/acknowledge", bob)
    incident.refresh_from_db()
    assert incident.acknowledged_by is not None
    assert incident.acknowledged_by.username == "bob"


# --- who is on call -----------------------------------------------------------


@pytest.fixture
def weekly_ops() -> Schedule:
    """Ops: ana then ben, weekly, handing off Mondays 09:00 Berlin time."""
    schedule = Schedule.objects.create(name="Ops", slug="ops", time_zone="Europe/Berlin")
    rotation = Rotation.objects.create(
        schedule=schedule,
        name="primary",
        start=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),  # Monday 09:00 CET
        shift_length=1,
        shift_unit="weeks",
    )
    for position, name in enumerate(("ana", "ben")):
        RotationMember.objects.create(
            rotation=rotation, user=UserFactory(username=name), position=position
        )
    return schedule


def test_who_is_on_call_per_schedule_at_a_time(
    client: Client, weekly_ops: Schedule, read_token: NewToken
) -> None:
    first_week = get(client, "/v1/oncall", read_token, at="2026-03-04T12:00:00Z").json()
    second_week = get(
        client, "/v1/oncall", read_token, schedule="ops", at="2026-03-10T12:00:00+01:00"
    ).json()

    [ops] = first_week["schedules"]
    assert [person["username"] for person in ops["on_call"]] == ["ana"]
    assert ops["next"]["person"]["username"] == "ben"
    assert ops["next"]["start"] == "2026-03-09T09:00:00+01:00"
    assert first_week["policy"] is None
    assert [p["username"] for p in second_week["schedules"][0]["on_call"]] == ["ben"]


def test_who_each_level_of_a_policy_would_page(
    client: Client, web: Service, weekly_ops: Schedule, read_token: NewToken
) -> None:
    boss = UserFactory(username="boss")
    policy = policy_with_levels((5, []), (10, [boss]))
    policy.levels.get(position=0).schedules.add(weekly_ops)
    web.escalation_policy = policy
    web.save()

    by_name = get(client, "/v1/oncall", read_token, policy=policy.name, at="2026-03-04T12:00Z")
    by_service = get(client, "/v1/oncall", read_token, service="web", at="2026-03-04T12:00Z")

    assert by_name.status_code == 200
    levels = by_name.json()["policy"]["levels"]
    assert [(lv["level"], lv["delay_minutes"]) for lv in levels] == [(1, 5), (2, 10)]
    assert [[p["username"] for p in lv["people"]] for lv in levels] == [["ana"], ["boss"]]
    assert by_service.json()["policy"] == by_name.json()["policy"]


def test_on_call_questions_that_cannot_be_answered_are_422(
    client: Client, web: Service, weekly_ops: Schedule, read_token: NewToken
) -> None:
    cases = [
        ({"schedule": "nope"}, "schedule"),
        ({"policy": "nope"}, "policy"),
        ({"policy": "²"}, "policy"),
        ({"policy": "9" * 30}, "policy"),
        ({"service": "web"}, "service"),  # no escalation policy
        ({"schedule": "ops", "policy": "x"}, "policy"),
        ({"at": "yesterday"}, "at"),
        ({"at": "9999-12-31T23:00:00Z"}, "at"),
    ]
    for params, field in cases:
        response = get(client, "/v1/oncall", read_token, **params)
        assert response.status_code == 422, params
        assert response["Content-Type"] == "application/problem+json"
        assert field in response.json()["errors"], params


# --- on-call health -----------------------------------------------------------


def test_insights_give_the_page_s_figures_as_json(
    client: Client, web: Service, read_token: NewToken, redis: Redis, time_machine: Any
) -> None:
    monday = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    time_machine.move_to(datetime(2026, 11, 29, 20, 0, tzinfo=UTC), tick=False)
    ana = UserFactory(username="ana")
    for minutes in (1, 2, 6):
        incident = Incident.objects.create(
            service=web,
            title="Disk full",
            severity="error",
            status="resolved",
            dedup_key="disk-full",
            opened_at=monday,
            acknowledged_at=monday + timedelta(minutes=minutes),
            resolved_at=monday + timedelta(minutes=10 * minutes),
        )
        Page.objects.create(
            incident=incident, user=ana, channel="ntfy", level=1, step=1, due_at=monday
        )
    Page.objects.update(created_at=monday)  # Monday 10:00: business hours
    TimelineEvent.objects.create(
        incident=incident, kind=EventKind.ESCALATED, created_at=monday, data={"level": 2}
    )

    response = get(client, "/v1/insights", read_token, days="7")

    assert response.status_code == 200
    body = response.json()
    assert body["days"] == 7
    assert body["service"] is None
    assert body["start"] == "2026-11-23T00:00:00Z"
    assert body["as_of"] == "2026-11-29T20:00:00Z"
    assert body["business_hours"] == {
        "weekdays": "Mon-Fri",
        "start": "09:00",
        "end": "18:00",
        "time_zone": "UTC",
    }
    assert body["incidents"] == 3
    assert body["incidents_per_day"][0] == {"date": "2026-11-23", "incidents": 3}
    assert len(body["incidents_per_day"]) == 7
    # 1, 2 and 6 minutes: p90 is 0.8 of the way from 2 to 6 minutes.
    assert body["time_to_acknowledge"] == {
        "count": 3,
        "median_seconds": 120.0,
        "p90_seconds": 312.0,
    }
    assert body["time_to_resolve"] == {"count": 3, "median_seconds": 1200.0, "p90_seconds": 3120.0}
    assert body["escalated_past_level_1"] == 1
    assert body["noisiest"] == [
        {
            "key": "disk-full",
            "is_dedup_key": True,
            "service": {"slug": "web", "name": "Web shop"},
            "incidents": 3,
            "alert_repeats": 0,
            "last_opened_at": "2026-11-23T10:00:00Z",
        }
    ]
    assert body["pages_per_person"] == [
        {"username": "ana", "business_hours": 3, "nights": 0, "weekends": 0, "total": 3}
    ]
    assert body["services"] == [
        {
            "service": {"slug": "web", "name": "Web shop"},
            "incidents": 3,
            "acknowledge_median_seconds": 120.0,
            "resolve_median_seconds": 1200.0,
            "escalated_past_level_1": 1,
        }
    ]


def test_insights_for_one_service_and_what_they_refuse(
    client: Client, web: Service, read_token: NewToken, redis: Redis
) -> None:
    one = get(client, "/v1/insights", read_token, service="web")
    assert one.status_code == 200
    assert one.json()["days"] == 30
    assert one.json()["service"] == {"slug": "web", "name": "Web shop"}
    assert one.json()["services"] == []
    assert one.json()["time_to_acknowledge"]["median_seconds"] is None

    for params, field in [
        ({"days": "14"}, "days"),
        ({"days": "x"}, "days"),
        ({"service": "nope"}, "service"),
    ]:
        response = get(client, "/v1/insights", read_token, **params)
        assert response.status_code == 422, params
        assert response["Content-Type"] == "application/problem+json"
        assert field in response.json()["errors"], params
    assert client.get("/v1/insights").status_code == 401
    document = client.get("/v1/openapi.json").json()
    days = next(
        p for p in document["paths"]["/v1/insights"]["get"]["parameters"] if p["name"] == "days"
    )
    assert days["schema"]["enum"] == [7, 30, 90]
