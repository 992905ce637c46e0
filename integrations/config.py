"""Ready-to-paste configuration for an integration: what to put in
alertmanager.yml, where to send Events API v2 events, which URL a heartbeat
pings, which address an email integration receives mail at. With the full key
right after creation or rotation; with a placeholder naming the key's prefix
afterwards (the key itself is not stored)."""

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


def _alertmanager(integration: Integration, key: str) -> list[Snippet]:
    base = settings.BASE_URL
    name = f"triage-{integration.service.slug}"
    in_path = f"""receivers:
  - name: {name}
    webhook_configs:
      - url: "{_url_with_key("integrations-alertmanager-key", key)}"
        send_resolved: true
        max_alerts: 0
"""
    in_header = f"""receivers:
  - name: {name}
    webhook_configs:
      - url: "{base}{reverse("integrations-alertmanager")}"
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials: "{key}"
"""
    return [
        Snippet("alertmanager.yml — key in a header (keeps it out of URLs)", "yaml", in_header),
        Snippet("alertmanager.yml — key in the URL", "yaml", in_path),
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
    return [
        Snippet("Events API v2 URL", "text", url),
        Snippet("Routing key (integration key)", "text", key),
        Snippet("Trigger an event with curl", "sh", curl),
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
    if integration.kind == Kind.EVENTS_V2:
        return _events_v2(integration, key)
    return _heartbeat(integration, key)
