"""Ready-to-paste configuration for an integration: a complete
alertmanager.yml, Grafana's contact-point settings, where to send Events API
v2 events (alerts and changes), which URL a heartbeat pings, which address an
email integration receives mail at. With the full
key right after creation or rotation; with a placeholder naming the key's
prefix afterwards (the key itself is not stored)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse

from integrations.models import Integration, Kind


@dataclass(frozen=True)
class Snippet:
    title: str
    language: str
    text: str


def _placeholder(integration: Integration) -> str:
    return f"<the key starting {integration.key_prefix}>"


def _url_with_key(name: str, key: str) -> str:
    # reverse() would percent-encode a placeholder's spaces and brackets.
    return settings.BASE_URL + reverse(name, args=["KEY"]).replace("KEY", key)


# A whole file, not a fragment: pasted into an empty alertmanager.yml it
# passes `amtool check-config` (tests/test_integrations_config.py runs it).
# Someone with a configuration already takes the receiver and the route's
# receiver line from it.
_ALERTMANAGER_FILE = """# A whole alertmanager.yml; `amtool check-config alertmanager.yml` passes.
# Already have one? Copy the receiver into your `receivers:` and route to it.
route:
  receiver: {name}
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: {name}
    webhook_configs:
      - url: "{url}"
        send_resolved: true
        max_alerts: 0
{auth}"""


def _alertmanager(integration: Integration, key: str) -> list[Snippet]:
    name = f"triage-{integration.service.slug}"
    header_auth = (
        "        http_config:\n"
        "          authorization:\n"
        "            type: Bearer\n"
        f'            credentials: "{key}"\n'
    )
    in_header = _ALERTMANAGER_FILE.format(
        name=name, url=settings.BASE_URL + reverse("integrations-alertmanager"), auth=header_auth
    )
    in_path = _ALERTMANAGER_FILE.format(
        name=name, url=_url_with_key("integrations-alertmanager-key", key), auth=""
    )
    return [
        Snippet("alertmanager.yml — key in a header (keeps it out of URLs)", "yaml", in_header),
        Snippet("alertmanager.yml — key in the URL", "yaml", in_path),
    ]


def _grafana(integration: Integration, key: str) -> list[Snippet]:
    url = settings.BASE_URL + reverse("integrations-grafana")
    name = f"triage-{integration.service.slug}"
    form = (
        "Alerting → Contact points → Add contact point → Integration: Webhook\n"
        f"URL:                                   {url}\n"
        "HTTP Method (Optional settings):       POST\n"
        "Authorization Header - Scheme:         Bearer\n"
        f"Authorization Header - Credentials:    {key}\n"
        "Disable resolved message:              off (resolved alerts resolve incidents)"
    )
    provisioning = f"""# provisioning/alerting/triage.yaml (Grafana file provisioning)
apiVersion: 1
contactPoints:
  - orgId: 1
    name: {name}
    receivers:
      - uid: {name}
        type: webhook
        disableResolveMessage: false
        settings:
          url: "{url}"
          httpMethod: POST
          authorization_scheme: Bearer
          authorization_credentials: "{key}"
"""
    return [
        Snippet("Grafana contact point (Webhook) — the form", "text", form),
        Snippet("Grafana contact point — file provisioning", "yaml", provisioning),
        Snippet(
            "Or the key in the URL (no header)",
            "text",
            _url_with_key("integrations-grafana-key", key),
        ),
    ]


def _events_v2(integration: Integration, key: str) -> list[Snippet]:
    url = settings.BASE_URL + reverse("integrations-enqueue")
    event = {
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": "disk-full-db1",
        "payload": {"summary": "Disk 95% full on db1", "source": "db1", "severity": "critical"},
    }
    curl = (
        f"curl -sS -X POST {shlex.quote(url)} -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(json.dumps(event))}"
    )
    change_url = settings.BASE_URL + reverse("integrations-change-enqueue")
    change = {
        "routing_key": key,
        "payload": {"summary": "Deployed web 2.4.1", "source": "ci"},
        "links": [{"href": "https://ci.example.org/builds/812", "text": "Build 812"}],
    }
    change_curl = (
        f"curl -sS -X POST {shlex.quote(change_url)} -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(json.dumps(change))}"
    )
    return [
        Snippet("Events API v2 URL", "text", url),
        Snippet("Routing key (integration key)", "text", key),
        Snippet("Trigger an event with curl", "sh", curl),
        Snippet("Record a change (a deploy) with curl", "sh", change_curl),
    ]


def _heartbeat(integration: Integration, key: str) -> list[Snippet]:
    url = _url_with_key("integrations-heartbeat", key)
    cron = f"*/5 * * * * /usr/local/bin/backup.sh && curl -fsS -m 10 --retry 3 {url}"
    return [
        Snippet("Ping URL (GET or POST)", "text", url),
        Snippet("From cron, after the job succeeded", "sh", cron),
    ]


def _email(integration: Integration) -> list[Snippet]:
    # The address is what routes mail, and it is stored: shown every time.
    address = integration.email.address
    test = (
        "printf 'Subject: Disk 95%% full on db1\\n\\nThe disk is almost full.\\n' | "
        f"sendmail {shlex.quote(address)}"
    )
    return [
        Snippet("Send alert mail to", "text", address),
        Snippet("Try it (your MTA must route the domain to manage.py ingest_email)", "sh", test),
    ]


def snippets(integration: Integration, raw_key: str | None = None) -> list[Snippet]:
    if integration.kind == Kind.EMAIL:
        return _email(integration)
    key = raw_key or _placeholder(integration)
    if integration.kind == Kind.ALERTMANAGER:
        return _alertmanager(integration, key)
    if integration.kind == Kind.GRAFANA:
        return _grafana(integration, key)
    if integration.kind == Kind.EVENTS_V2:
        return _events_v2(integration, key)
    return _heartbeat(integration, key)
