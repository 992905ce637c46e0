"""Importing incidents exported from elsewhere (CSV or JSON).

Columns (CSV header names, JSON object keys; case does not matter):

=================  ========  ==============================================
column             required  meaning
=================  ========  ==============================================
``id``             yes       the incident's id in the old system; with the
                             namespace it makes the idempotency key
                             ``import:<namespace>:<id>``, so importing the
                             same file twice opens nothing new
``title``          yes       at most 200 characters
``severity``       yes       critical/error/warning/info, SEV1-SEV4, P1-P4,
                             high/medium/low...
``status``         yes       triggered/acknowledged/resolved (also open,
                             new, ack, closed, done, fixed)
``created_at``     yes       ISO 8601; without an offset, in TIME_ZONE
``resolved_at``    resolved  ISO 8601; only for resolved incidents
``acknowledged_at`` no       ISO 8601; acknowledged/resolved incidents
``notes``          no        free text, kept as the incident's details
``details``        no        more free text (appended to notes)
``service``        see note  service slug; ``--service`` gives a default
=================  ========  ==============================================

A plain legacy ``incidents`` table (id, title, severity, status, created_at,
resolved_at, notes) exported with ``COPY ... TO ... CSV HEADER`` imports as it
is, with ``--service``.

Every row is validated before anything is written; errors name the row
(CSV: its line in a spreadsheet, the header being row 1; JSON: the item's
position, from 1).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from incidents import services
from incidents.models import Incident, Service, Severity, Source, Status
from integrations.payloads import severity_from

COLUMNS = (
    "id",
    "title",
    "severity",
    "status",
    "created_at",
    "resolved_at",
    "acknowledged_at",
    "notes",
    "details",
    "service",
)
STATUS_ALIASES = {
    **dict.fromkeys(("triggered", "open", "new", "firing", "active"), Status.TRIGGERED),
    **dict.fromkeys(("acknowledged", "ack", "acked", "investigating"), Status.ACKNOWLEDGED),
    **dict.fromkeys(("resolved", "closed", "done", "fixed"), Status.RESOLVED),
}


class ImportFileError(Exception):
    """The file as a whole cannot be read (not a row problem)."""


@dataclass(frozen=True)
class Row:
    number: int
    legacy_id: str
    service: Service
    title: str
    severity: str
    status: str
    created_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    details: str

    def idempotency_key(self, namespace: str) -> str:
        return f"import:{namespace}:{self.legacy_id}"


@dataclass(frozen=True)
class RowError:
    number: int
    message: str

    def __str__(self) -> str:
        return f"row {self.number}: {self.message}"


@dataclass
class Plan:
    rows: list[Row]  # valid and not imported yet
    already: list[Row]  # imported by an earlier run
    errors: list[RowError]
    total: int


# Exports are read whole into memory (every row is validated before anything
# is written), so their size is bounded: 10 MB is some 50,000 incidents with
# notes. `--max-bytes` raises it for a bigger export.
MAX_BYTES = 10 * 1024 * 1024


def read_records(
    path: Path, fmt: str = "", *, max_bytes: int = MAX_BYTES
) -> list[tuple[int, dict[str, Any]]]:
    """(row number, record) pairs from a CSV or JSON export of at most `max_bytes`."""
    fmt = fmt or path.suffix.lower().lstrip(".")
    try:
        with path.open("rb") as file:
            # One byte more than allowed tells "too large" from "exactly the
            # limit" without reading on: /dev/zero or a huge file stops here.
            data = file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ImportFileError(
                f"{path} is larger than {max_bytes:,} bytes; nothing was imported. "
                "Split it, or raise the limit with --max-bytes."
            )
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"Cannot read {path}: {exc}") from None
    if fmt == "json":
        return _json_records(text)
    if fmt == "csv":
        return _csv_records(text)
    raise ImportFileError(f"Unknown format {fmt!r}: use a .csv or .json file, or --format.")


def _csv_records(text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise ImportFileError("The CSV file is empty (no header row).")
    records = []
    # The header is row 1, so the first record is row 2 (as in a spreadsheet).
    try:
        for number, record in enumerate(reader, 2):
            values = {name.strip().lower(): value for name, value in record.items() if name}
            records.append((number, values))
    except csv.Error as exc:  # NUL bytes, a field over csv's size limit
        raise ImportFileError(f"The CSV file cannot be read: {exc}") from None
    return records


def _json_records(text: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ImportFileError(f"The JSON file is not valid JSON: {exc}") from None
    except RecursionError:
        raise ImportFileError("The JSON file is nested too deeply to be an export.") from None
    if isinstance(data, dict) and isinstance(data.get("incidents"), list):
        data = data["incidents"]
    if not isinstance(data, list):
        raise ImportFileError(
            'The JSON file must hold a list of incidents (or {"incidents": [...]}).'
        )
    records: list[tuple[int, dict[str, Any]]] = []
    for number, item in enumerate(data, 1):
        if isinstance(item, dict):
            records.append((number, {str(k).strip().lower(): v for k, v in item.items()}))
        else:
            records.append((number, {"__invalid__": True}))
    return records


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).strip()


def _time(value: str, column: str, problems: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        problems.append(f"{column} {value[:40]!r} is not an ISO 8601 time")
        return None
    if parsed.tzinfo is None:
        parsed = timezone.make_aware(parsed, timezone.get_default_timezone())
    return parsed


def _severity(value: str, problems: list[str]) -> str:
    severity = severity_from(value, "")
    if not severity:
        allowed = ", ".join(Severity.values)
        problems.append(f"severity {value[:40]!r} is not one of {allowed} (or SEV1-SEV4)")
    return severity


def _row(
    number: int,
    record: dict[str, Any],
    services_by_slug: dict[str, Service],
    default_service: Service | None,
    now: datetime,
) -> Row | RowError:
    if record.get("__invalid__"):
        return RowError(number, "is not an object")
    values = {column: _text(record.get(column)) for column in COLUMNS}
    problems: list[str] = []
    if any("\x00" in value for value in values.values()):
        problems.append("contains a NUL character")
    for column in ("id", "title", "severity", "status", "created_at"):
        if not values[column]:
            problems.append(f"{column} is missing")
    if len(values["id"]) > 200:
        problems.append("id is longer than 200 characters")
    if len(values["title"]) > 200:
        problems.append("title is longer than 200 characters")
    severity = _severity(values["severity"], problems) if values["severity"] else ""
    status = STATUS_ALIASES.get(values["status"].lower(), "")
    if values["status"] and not status:
        problems.append(
            f"status {values['status'][:40]!r} is not triggered, acknowledged or resolved"
        )
    created = _time(values["created_at"], "created_at", problems)
    acknowledged = _time(values["acknowledged_at"], "acknowledged_at", problems)
    resolved = _time(values["resolved_at"], "resolved_at", problems)
    if created and created > now:
        problems.append("created_at is in the future")
    if status == Status.RESOLVED and not values["resolved_at"]:
        problems.append("resolved_at is missing (the status is resolved)")
    if status and status != Status.RESOLVED and values["resolved_at"]:
        problems.append(f"resolved_at is set but the status is {status}")
    if status == Status.TRIGGERED and values["acknowledged_at"]:
        problems.append("acknowledged_at is set but the status is triggered")
    for column, moment in (("acknowledged_at", acknowledged), ("resolved_at", resolved)):
        if created and moment and moment < created:
            problems.append(f"{column} is before created_at")
    if acknowledged and resolved and resolved < acknowledged:
        problems.append("resolved_at is before acknowledged_at")
    slug = values["service"]
    service = services_by_slug.get(slug) if slug else default_service
    if service is None:
        problems.append(
            f"no service {slug!r}" if slug else "service is missing (add the column or --service)"
        )
    if problems or service is None or created is None:
        return RowError(number, "; ".join(problems))
    details = "\n\n".join(part for part in (values["notes"], values["details"]) if part)
    return Row(
        number=number,
        legacy_id=values["id"],
        service=service,
        title=values["title"],
        severity=severity,
        status=status,
        created_at=created,
        acknowledged_at=acknowledged or (created if status == Status.ACKNOWLEDGED else None),
        resolved_at=resolved,
        details=details,
    )


def _fingerprint(row: Row) -> str:
    return services.request_fingerprint(
        service=row.service,
        title=row.title,
        severity=row.severity,
        details=row.details,
        dedup_key="",
    )


def plan(
    records: Iterable[tuple[int, dict[str, Any]]],
    *,
    namespace: str,
    default_service: Service | None,
    now: datetime | None = None,
) -> Plan:
    """Validate every record; sort valid rows into new and already imported."""
    now = now or timezone.now()
    records = list(records)
    services_by_slug = {service.slug: service for service in Service.objects.all()}
    result = Plan(rows=[], already=[], errors=[], total=len(records))
    seen: dict[str, int] = {}
    valid: list[Row] = []
    for number, record in records:
        row = _row(number, record, services_by_slug, default_service, now)
        if isinstance(row, RowError):
            result.errors.append(row)
        elif row.legacy_id in seen:
            result.errors.append(
                RowError(
                    number,
                    f"id {row.legacy_id!r} appears again (first in row {seen[row.legacy_id]})",
                )
            )
        else:
            seen[row.legacy_id] = number
            valid.append(row)
    keys = [row.idempotency_key(namespace) for row in valid]
    existing = {
        incident.idempotency_key: incident
        for incident in Incident.objects.filter(idempotency_key__in=keys).only(
            "pk", "idempotency_key", "request_fingerprint"
        )
    }
    for row in valid:
        earlier = existing.get(row.idempotency_key(namespace))
        if earlier is None:
            result.rows.append(row)
        elif earlier.request_fingerprint == _fingerprint(row):
            result.already.append(row)
        else:
            result.errors.append(
                RowError(
                    row.number,
                    f"id {row.legacy_id!r} was imported before as incident #{earlier.pk} with "
                    "different content",
                )
            )
    result.errors.sort(key=lambda error: error.number)
    return result


def import_row(row: Row, namespace: str) -> Incident | None:
    """Open the incident at its original time and replay its status changes.

    Returns None when an earlier run already imported it (nothing changes).
    """
    with transaction.atomic():
        opened = services.open_incident(
            service=row.service,
            title=row.title,
            severity=row.severity,
            details=row.details,
            source=Source.IMPORT,
            idempotency_key=row.idempotency_key(namespace),
            data={"imported_id": row.legacy_id},
            now=row.created_at,
        )
        if not opened.created:
            return None
        incident = opened.incident
        if row.acknowledged_at is not None:
            incident = services.acknowledge_incident(incident, actor=None, now=row.acknowledged_at)
        if row.status == Status.RESOLVED and row.resolved_at is not None:
            incident = services.resolve_incident(
                incident, actor=None, now=row.resolved_at, message="Imported as resolved."
            )
        return incident
