"""`manage.py import_incidents FILE`: CSV and JSON exports, validation with
row numbers, dry runs, all-or-nothing, and re-runs that import nothing twice."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from redis import Redis

from incidents.models import EventKind, Incident, Service, Status
from tests.factories import ServiceFactory
from tests.processes import ROOT, app_env

pytestmark = pytest.mark.django_db

# A plain legacy `incidents` table, as `COPY incidents TO STDOUT CSV HEADER` writes it.
LEGACY_CSV = """id,title,severity,status,created_at,resolved_at,notes
101,Checkout returns 502,critical,resolved,2025-11-02 14:03:00+00,2025-11-02 15:10:00+00,\
"Bad deploy, rolled back"
102,Search is slow,warning,open,2025-11-03T09:00:00Z,,
103,Disk full on db1,SEV2,closed,2025-11-04T22:15:00,2025-11-05T01:00:00,"Rotated logs.
Added an alert."
"""


@pytest.fixture
def db_service(redis: Redis) -> Service:
    return ServiceFactory(slug="db", name="Database")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run(*args: Any) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_incidents", *[str(arg) for arg in args], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_legacy_table_export_imports_with_its_times_kept(
    tmp_path: Path, web: Service, redis: Redis
) -> None:
    out, _ = run(write(tmp_path, "legacy.csv", LEGACY_CSV), "--service", "web")

    assert "3 row(s) read: 3 imported, 0 already imported, 0 invalid." in out
    checkout = Incident.objects.get(title="Checkout returns 502")
    assert checkout.source == "import"
    assert checkout.status == Status.RESOLVED
    assert checkout.opened_at == datetime(2025, 11, 2, 14, 3, tzinfo=UTC)
    assert checkout.resolved_at == datetime(2025, 11, 2, 15, 10, tzinfo=UTC)
    assert checkout.details == "Bad deploy, rolled back"
    assert checkout.idempotency_key == "import:legacy:101"
    opened = checkout.timeline.get(kind=EventKind.OPENED)
    assert opened.created_at == checkout.opened_at
    assert Incident.objects.get(title="Search is slow").status == Status.TRIGGERED
    disk = Incident.objects.get(title="Disk full on db1")
    assert disk.severity == "error"
    assert disk.details == "Rotated logs.\nAdded an alert."
    assert disk.opened_at == datetime(2025, 11, 4, 22, 15, tzinfo=UTC)  # naive = TIME_ZONE (UTC)


def test_running_the_same_file_again_imports_nothing(
    tmp_path: Path, web: Service, redis: Redis
) -> None:
    path = write(tmp_path, "legacy.csv", LEGACY_CSV)
    run(path, "--service", "web")
    out, _ = run(path, "--service", "web")
    assert "3 row(s) read: 0 imported, 3 already imported, 0 invalid." in out
    assert Incident.objects.count() == 3


def test_a_json_export_with_a_service_column(
    tmp_path: Path, web: Service, db_service: Service
) -> None:
    records = [
        {
            "id": 7,
            "title": "Replica lag",
            "severity": "P2",
            "status": "acknowledged",
            "created_at": "2025-12-01T10:00:00Z",
            "acknowledged_at": "2025-12-01T10:05:00Z",
            "service": "db",
            "details": {"replica": "db2"},
        },
        {
            "id": "8",
            "title": "Login errors",
            "severity": "info",
            "status": "new",
            "created_at": "2025-12-02T10:00:00+01:00",
            "service": "web",
            "notes": None,
        },
    ]
    path = write(tmp_path, "export.json", json.dumps({"incidents": records}))
    out, _ = run(path, "--namespace", "statuspage")
    assert "2 imported" in out
    lag = Incident.objects.get(title="Replica lag")
    assert lag.service == db_service
    assert lag.status == Status.ACKNOWLEDGED
    assert lag.acknowledged_at == datetime(2025, 12, 1, 10, 5, tzinfo=UTC)
    assert lag.idempotency_key == "import:statuspage:7"
    assert json.loads(lag.details) == {"replica": "db2"}
    assert Incident.objects.get(title="Login errors").opened_at == datetime(
        2025, 12, 2, 9, 0, tzinfo=UTC
    )


BROKEN_CSV = """id,title,severity,status,created_at,resolved_at,service
1,Fine,critical,open,2025-01-01T00:00:00Z,,web
2,,critical,open,2025-01-01T00:00:00Z,,web
3,Bad severity,sev0,open,2025-01-01T00:00:00Z,,web
4,Bad time,error,open,yesterday,,web
5,No resolve time,error,resolved,2025-01-01T00:00:00Z,,web
6,Resolved before opened,error,resolved,2025-01-02T00:00:00Z,2025-01-01T00:00:00Z,web
7,Unknown service,error,open,2025-01-01T00:00:00Z,,nope
1,Duplicate id,error,open,2025-01-01T00:00:00Z,,web
9,Weird status,error,exploded,2025-01-01T00:00:00Z,,web
10,From the future,error,open,2999-01-01T00:00:00Z,,web
"""


def test_every_invalid_row_is_reported_with_its_row_number_and_nothing_is_written(
    tmp_path: Path, web: Service
) -> None:
    err = StringIO()
    with pytest.raises(CommandError, match="9 invalid row"):
        call_command("import_incidents", str(write(tmp_path, "broken.csv", BROKEN_CSV)), stderr=err)
    report = err.getvalue().splitlines()
    assert report == [
        "row 3: title is missing",
        "row 4: severity 'sev0' is not one of critical, error, warning, info (or SEV1-SEV4)",
        "row 5: created_at 'yesterday' is not an ISO 8601 time",
        "row 6: resolved_at is missing (the status is resolved)",
        "row 7: resolved_at is before created_at",
        "row 8: no service 'nope'",
        "row 9: id '1' appears again (first in row 2)",
        "row 10: status 'exploded' is not triggered, acknowledged or resolved",
        "row 11: created_at is in the future",
    ]
    assert Incident.objects.count() == 0


def test_continue_on_error_imports_the_valid_rows(
    tmp_path: Path, web: Service, redis: Redis
) -> None:
    out, err = run(write(tmp_path, "broken.csv", BROKEN_CSV), "--continue-on-error")
    assert "10 row(s) read: 1 imported, 0 already imported, 9 invalid." in out
    assert "row 3: title is missing" in err
    assert list(Incident.objects.values_list("title", flat=True)) == ["Fine"]


def test_a_dry_run_validates_and_writes_nothing(tmp_path: Path, web: Service) -> None:
    out, _ = run(write(tmp_path, "legacy.csv", LEGACY_CSV), "--service", "web", "--dry-run")
    assert "3 would import" in out
    assert Incident.objects.count() == 0
    with pytest.raises(CommandError):
        run(write(tmp_path, "broken.csv", BROKEN_CSV), "--dry-run")


def test_the_same_id_with_different_content_is_refused(
    tmp_path: Path, web: Service, redis: Redis
) -> None:
    run(write(tmp_path, "legacy.csv", LEGACY_CSV), "--service", "web")
    changed = LEGACY_CSV.replace("Search is slow", "Search is down")
    err = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "import_incidents",
            str(write(tmp_path, "changed.csv", changed)),
            "--service",
            "web",
            stderr=err,
        )
    assert "row 3: id '102' was imported before as incident" in err.getvalue()


def test_all_or_nothing_rolls_back_when_a_write_fails(
    tmp_path: Path, web: Service, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from integrations import importer

    real = importer.services.resolve_incident
    calls = {"n": 0}

    def fail_second(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(importer.services, "resolve_incident", fail_second)
    with pytest.raises(RuntimeError):
        run(write(tmp_path, "legacy.csv", LEGACY_CSV), "--service", "web")
    assert Incident.objects.count() == 0


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("export.json", "{not json", "not valid JSON"),
        ("export.json", '{"rows": []}', "must hold a list"),
        ("export.csv", "", "empty"),
        ("export.xml", "<incidents/>", "Unknown format"),
    ],
)
def test_unreadable_files_are_refused_clearly(
    tmp_path: Path, web: Service, name: str, text: str, message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        run(write(tmp_path, name, text), "--service", "web")


def test_json_items_that_are_not_objects_are_reported(tmp_path: Path, web: Service) -> None:
    err = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "import_incidents", str(write(tmp_path, "x.json", '[1, {"id": 2}]')), stderr=err
        )
    assert "row 1: is not an object" in err.getvalue()
    assert "row 2: title is missing" in err.getvalue()


def test_an_unknown_default_service_is_refused(tmp_path: Path, db: None) -> None:
    with pytest.raises(CommandError, match="No service with slug 'nope'"):
        run(write(tmp_path, "legacy.csv", LEGACY_CSV), "--service", "nope")


def test_a_missing_file_is_refused(tmp_path: Path, web: Service) -> None:
    with pytest.raises(CommandError, match="Cannot read"):
        run(tmp_path / "missing.csv", "--service", "web")


# --- bounded input --------------------------------------------------------------


@pytest.mark.subprocess
def test_an_endless_file_is_refused_at_once_without_hanging(web: Service) -> None:
    # Before, the command read /dev/zero until memory ran out.
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", "import_incidents", "/dev/zero", "--format", "csv"],
        cwd=ROOT,
        env=app_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "/dev/zero is larger than 10,485,760 bytes; nothing was imported." in result.stderr
    assert "--max-bytes" in result.stderr
    assert time.monotonic() - started < 60
    assert not Incident.objects.exists()


def test_a_file_over_the_limit_imports_nothing(tmp_path: Path, web: Service) -> None:
    path = write(tmp_path, "legacy.csv", LEGACY_CSV)
    size = path.stat().st_size
    with pytest.raises(CommandError, match=f"larger than {size - 1:,} bytes; nothing"):
        run(path, "--service", "web", "--max-bytes", size - 1)
    assert not Incident.objects.exists()

    run(path, "--service", "web", "--max-bytes", size)  # exactly the limit is fine
    assert Incident.objects.count() == 3


def test_a_real_export_over_ten_megabytes_is_refused_by_default(
    tmp_path: Path, web: Service
) -> None:
    header, first_row, _ = LEGACY_CSV.split("\n", 2)
    rows = "\n".join(first_row.replace("101,", f"{number},", 1) for number in range(1, 120_000))
    path = write(tmp_path, "big.csv", f"{header}\n{rows}\n")
    assert path.stat().st_size > 10 * 1024 * 1024
    with pytest.raises(CommandError, match="larger than 10,485,760 bytes"):
        run(path, "--service", "web")
    assert not Incident.objects.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("id,title\n1," + "x" * 200_000 + "\n", "CSV file cannot be read"),
    ],
)
def test_hostile_contents_within_the_limit_are_refused_clearly(
    tmp_path: Path, web: Service, text: str, message: str
) -> None:
    name = "hostile.json" if text.startswith("[") else "hostile.csv"
    with pytest.raises(CommandError, match=message):
        run(write(tmp_path, name, text), "--service", "web")


def test_a_limit_below_one_byte_is_refused(tmp_path: Path, web: Service) -> None:
    with pytest.raises(CommandError, match="--max-bytes must be at least 1"):
        run(write(tmp_path, "legacy.csv", LEGACY_CSV), "--max-bytes", "0")
