"""manage.py ingest_email: one message on stdin, as an MTA's pipe transport
delivers it, opens, joins or resolves an incident of the email integration it
is addressed to; bad mail exits with the sysexits.h status the MTA acts on and
writes nothing. Messages are built with Python's email package."""

from __future__ import annotations

import subprocess
import sys
from email.headerregistry import Address
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import make_msgid
from io import BytesIO, StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from redis import Redis

from incidents.models import EventKind, Incident, Service, Source, Status, TimelineEvent
from integrations.keys import NewKey, revoke_integration
from integrations.models import EmailSettings, Integration
from tests.factories import ServiceFactory
from tests.integration_factories import integration
from tests.processes import ROOT, app_env, free_port

pytestmark = pytest.mark.django_db

EX_DATAERR, EX_NOUSER, EX_TEMPFAIL = 65, 67, 75
ADDRESS = "web+alerts@triage.example"


@pytest.fixture
def inbox(web: Service, redis: Redis) -> NewKey:
    return integration(web, "email", name="legacy UPS", email={"address": ADDRESS})


@pytest.fixture
def resolving(web: Service, redis: Redis) -> NewKey:
    return integration(
        web, "email", name="nagios", email={"address": ADDRESS, "resolve_by_subject": True}
    )


def mail(subject: str = "Disk 95% full on db1", body: str = "db1: /var is at 95%.") -> EmailMessage:
    message = EmailMessage()
    message["From"] = Address("UPS", "ups", "dc1.example")
    message["To"] = ADDRESS
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="dc1.example")
    message.set_content(body)
    return message


def deliver(message: Any, *recipients: str) -> tuple[int, str, str]:
    """Run the command as the MTA would: (exit status, stdout, stderr)."""
    raw = message if isinstance(message, bytes) else message.as_bytes()
    options = [f"--recipient={address}" for address in recipients]
    out, err = StringIO(), StringIO()
    try:
        call_command("ingest_email", *options, stdin=BytesIO(raw), stdout=out, stderr=err)
    except SystemExit as exited:
        return int(exited.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


# --- what a message becomes --------------------------------------------------


def test_a_message_opens_an_incident_titled_by_its_subject(inbox: NewKey, web: Service) -> None:
    status, out, _ = deliver(mail(), ADDRESS)

    assert status == 0
    incident = Incident.objects.get()
    assert (incident.title, incident.details) == ("Disk 95% full on db1", "db1: /var is at 95%.")
    assert (incident.service, incident.source, incident.status) == (web, Source.EMAIL, "triggered")
    assert incident.severity == inbox.integration.default_severity
    assert out.startswith(f"opened: incident #{incident.pk} on Web shop")
    opened = incident.timeline.get(kind=EventKind.OPENED)
    assert opened.data["from"] == "UPS <ups@dc1.example>"
    assert "via Email" in opened.message


def test_the_text_part_is_the_details_and_attachments_are_ignored(inbox: NewKey) -> None:
    message = MIMEMultipart("mixed")
    message["Subject"] = "Backup failed"
    message["To"] = ADDRESS
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText("Plain: job 42 exited 1.", "plain"))
    alternative.attach(MIMEText("<p>HTML: <b>job 42</b> exited 1.</p>", "html"))
    message.attach(alternative)
    log = MIMEText("ATTACHED LOG LINE", "plain")
    log.add_header("Content-Disposition", "attachment", filename="backup.log")
    message.attach(log)
    message.attach(MIMEApplication(b"%PDF-1.4 binary", Name="report.pdf"))

    assert deliver(message)[0] == 0

    incident = Incident.objects.get()
    assert incident.details == "Plain: job 42 exited 1."


def test_a_text_stdin_is_read_too(inbox: NewKey) -> None:
    call_command("ingest_email", stdin=StringIO(mail().as_string()), stdout=StringIO())
    assert Incident.objects.count() == 1


def test_quoted_printable_and_encoded_word_subjects_are_decoded(inbox: NewKey) -> None:
    message = EmailMessage()
    message["To"] = ADDRESS
    # Encoded words, as mailers write non-ASCII subjects (RFC 2047); the space
    # between two of them is not text, so the second one carries its own.
    message["Subject"] = (
        "=?utf-8?q?Temp=C3=A9rature_=C3=A9lev=C3=A9e?= =?iso-8859-1?b?IHNhbGxlIDM=?="
    )
    message.set_content("Capteur: 41 °C — seuil 35 °C.\n", cte="quoted-printable")
    assert b"=C2=B0C" in message.as_bytes()  # really sent quoted-printable

    assert deliver(message)[0] == 0

    incident = Incident.objects.get()
    assert incident.title == "Température élevée salle 3"
    assert incident.details == "Capteur: 41 °C — seuil 35 °C."


def test_an_html_only_message_gives_its_text(inbox: NewKey) -> None:
    message = EmailMessage()
    message["To"] = ADDRESS
    message["Subject"] = "Job failed"
    message.set_content(
        "<html><head><title>t</title><style>p {color: red}</style></head><body>"
        "<h1>Job &amp; backup</h1><p>Exit code <b>2</b>&nbsp;at 03:00.</p>"
        "<script>alert('x')</script><ul><li>db1</li><li>db2</li></ul></body></html>",
        subtype="html",
    )

    assert deliver(message)[0] == 0

    details = Incident.objects.get().details
    assert details == "Job & backup\n\nExit code 2 at 03:00.\n\n- db1\n- db2"


def test_an_unknown_charset_or_bad_bytes_still_read_as_text(inbox: NewKey) -> None:
    raw = (
        f"To: {ADDRESS}\nSubject: caf\xe9 down\nContent-Type: text/plain; charset=x-unknown\n\n"
    ).encode("latin-1") + b"bytes \xff\xfe here\n"

    assert deliver(raw)[0] == 0

    incident = Incident.objects.get()
    assert incident.title == "caf\ufffd down"
    assert incident.details == "bytes \ufffd\ufffd here"


def test_a_long_text_is_cut_and_html_tables_keep_their_cells_apart(inbox: NewKey) -> None:
    deliver(mail("long", body="word " * 20_000))
    html = EmailMessage()
    html["To"], html["Subject"] = ADDRESS, "table"
    html.set_content(
        "<table><tr><th>host</th><th>disk</th></tr><tr><td>db1</td><td>95%</td></tr>",
        subtype="html",
    )
    deliver(html)

    details = dict(Incident.objects.values_list("title", "details"))
    assert 65_000 < len(details["long"]) <= 65_536
    assert details["long"].endswith("word…")
    assert details["table"] == "host disk\ndb1 95%"


# --- deduplication and resolving -----------------------------------------------


def test_the_same_subject_joins_the_open_incident(inbox: NewKey) -> None:
    deliver(mail("[FIRING:1] Disk full on db1"))
    status, out, _ = deliver(mail("Re: [FIRING:2] Disk full on DB1"))

    assert status == 0
    incident = Incident.objects.get()
    assert out.startswith(f"joined: incident #{incident.pk}")
    assert incident.timeline.filter(kind=EventKind.ALERT).count() == 1
    assert deliver(mail("Disk full on db2"))[0] == 0
    assert Incident.objects.count() == 2


def test_the_same_message_delivered_twice_opens_one_incident(inbox: NewKey) -> None:
    message = mail()
    deliver(message)
    status, out, _ = deliver(message)

    assert status == 0
    assert out.startswith("duplicate: ")
    incident = Incident.objects.get()
    assert list(incident.timeline.values_list("kind", flat=True)).count(EventKind.ALERT) == 0


def test_a_redelivered_repeat_is_counted_once_too(inbox: NewKey) -> None:
    deliver(mail())
    repeat = mail()
    deliver(repeat)
    deliver(repeat)
    assert Incident.objects.get().timeline.filter(kind=EventKind.ALERT).count() == 1


def test_a_message_id_reused_for_another_alert_does_not_swallow_it(inbox: NewKey) -> None:
    first, second = mail("UPS on battery"), mail("UPS battery low")
    second.replace_header("Message-ID", first["Message-ID"])
    deliver(first)
    deliver(second)
    assert sorted(Incident.objects.values_list("title", flat=True)) == [
        "UPS battery low",
        "UPS on battery",
    ]


@pytest.mark.parametrize(
    "subject",
    [
        "[RESOLVED] Disk full on db1",
        "RESOLVED: Disk full on db1",
        "OK - Disk full on db1",
        "Disk full on db1 [OK]",
        "Re: Disk full on db1 - resolved",
    ],
)
def test_a_resolving_subject_resolves_the_open_incident(resolving: NewKey, subject: str) -> None:
    deliver(mail("[FIRING:1] Disk full on db1"))
    status, out, _ = deliver(mail(subject))

    assert status == 0
    incident = Incident.objects.get()
    assert incident.status == Status.RESOLVED
    assert out.startswith(f"resolved: incident #{incident.pk}")
    resolved = incident.timeline.get(kind=EventKind.RESOLVED)
    assert resolved.message == f"Resolved by email: {subject}"


def test_an_all_clear_with_nothing_open_is_accepted_and_changes_nothing(
    resolving: NewKey,
) -> None:
    status, out, _ = deliver(mail("[RESOLVED] Disk full on db1"))
    assert status == 0
    assert out.startswith("dropped: incident none open")
    assert not Incident.objects.exists()


@pytest.mark.parametrize("subject", ["OK to deploy the fix?", "Backup not ok", "Resolver down"])
def test_subjects_that_only_contain_the_words_open_incidents(
    resolving: NewKey, subject: str
) -> None:
    assert deliver(mail(subject))[0] == 0
    assert Incident.objects.get().title == subject


def test_without_resolve_by_subject_an_all_clear_only_adds_to_the_timeline(inbox: NewKey) -> None:
    deliver(mail("[FIRING:1] Disk full on db1"))
    deliver(mail("[RESOLVED] Disk full on db1"))
    incident = Incident.objects.get()
    assert incident.status == Status.TRIGGERED
    assert incident.timeline.get(kind=EventKind.ALERT).message == "[RESOLVED] Disk full on db1"


def test_a_pattern_over_the_subject_pairs_nagios_problem_and_recovery(resolving: NewKey) -> None:
    EmailSettings.objects.update(dedup_pattern=r"Service Alert: (\S+) is")
    deliver(mail("** PROBLEM Service Alert: db1/Disk is CRITICAL **"))
    deliver(mail("** PROBLEM Service Alert: db2/Disk is WARNING **"))
    deliver(mail("** RECOVERY Service Alert: db1/Disk is OK **"))

    statuses = dict(Incident.objects.values_list("title", "status"))
    assert statuses == {
        "** PROBLEM Service Alert: db1/Disk is CRITICAL **": Status.RESOLVED,
        "** PROBLEM Service Alert: db2/Disk is WARNING **": Status.TRIGGERED,
    }


def test_a_header_can_be_the_dedup_key(inbox: NewKey) -> None:
    EmailSettings.objects.update(dedup_header="X-Alert-ID")
    first, second, other = mail("Disk 90% full"), mail("Disk 95% full"), mail("Disk 90% full")
    first["X-Alert-ID"] = second["X-Alert-ID"] = "disk-db1"
    other["X-Alert-ID"] = "disk-db2"
    for message in (first, second, other):
        deliver(message)
    assert sorted(Incident.objects.values_list("title", flat=True)) == [
        "Disk 90% full",
        "Disk 90% full",
    ]


def test_where_the_pattern_finds_nothing_the_subject_is_the_key(inbox: NewKey) -> None:
    EmailSettings.objects.update(dedup_pattern=r"host=(\w+)")
    for subject in (
        "Disk full host=db1",
        "Disk 99% host=db1",
        "Fan failed",
        "[FIRING:3] Fan failed",
    ):
        deliver(mail(subject))
    assert sorted(Incident.objects.values_list("title", flat=True)) == [
        "Disk full host=db1",
        "Fan failed",
    ]


def test_a_pattern_over_a_header_picks_the_part_that_counts(inbox: NewKey) -> None:
    EmailSettings.objects.update(dedup_header="X-Alert", dedup_pattern=r"^(\w+)/")
    first, second, third = mail("one"), mail("two"), mail("three")
    first["X-Alert"], second["X-Alert"], third["X-Alert"] = "db1/disk", "db1/fan", "no slash"
    for message in (first, second, third):
        deliver(message)
    assert sorted(Incident.objects.values_list("title", flat=True)) == ["one", "three"]


# --- routing by address --------------------------------------------------------


def test_each_integration_has_its_own_address_and_routes_to_its_service(
    inbox: NewKey, redis: Redis
) -> None:
    db = ServiceFactory(name="Database", slug="db")
    other = integration(db, "email")
    address = other.integration.email.address
    assert address.startswith("db+")
    assert address.endswith("@localhost")

    deliver(mail("Replication lag"), address.upper())
    deliver(mail("Disk full"), ADDRESS)

    assert dict(Incident.objects.values_list("title", "service__slug")) == {
        "Replication lag": "db",
        "Disk full": "web",
    }


def test_without_recipient_the_delivery_headers_are_read(inbox: NewKey) -> None:
    message = mail()
    del message["To"]
    message["To"] = "ops-list@dc1.example"
    message["Delivered-To"] = ADDRESS.upper()
    assert deliver(message)[0] == 0
    assert Incident.objects.count() == 1


@pytest.mark.parametrize("address", ["nobody@triage.example", "web+alerts@elsewhere.example"])
def test_an_unknown_address_is_no_such_user_and_writes_nothing(inbox: NewKey, address: str) -> None:
    status, out, err = deliver(mail(), address)
    assert status == EX_NOUSER
    assert out == ""
    assert f"No active email integration has the address {address}" in err
    assert not Incident.objects.exists()


def test_a_message_with_no_address_at_all_is_no_such_user(inbox: NewKey) -> None:
    message = mail()
    del message["To"]
    status, _, err = deliver(message)
    assert status == EX_NOUSER
    assert "none found in the headers" in err


def test_a_revoked_integration_no_longer_receives(inbox: NewKey) -> None:
    revoke_integration(inbox.integration)
    assert deliver(mail(), ADDRESS)[0] == EX_NOUSER
    assert not Incident.objects.exists()


def test_over_the_rate_limit_the_mta_is_told_to_retry(inbox: NewKey, one_window: None) -> None:
    Integration.objects.update(rate_limit_per_minute=1)
    assert deliver(mail("first"))[0] == 0
    status, _, err = deliver(mail("second"))
    assert status == EX_TEMPFAIL
    assert "may receive 1 messages a minute" in err
    assert Incident.objects.count() == 1


def test_an_unexpected_error_keeps_the_message_with_the_mta(
    inbox: NewKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("integrations.services.ingest_email", broken)
    status, _, err = deliver(mail())
    assert status == EX_TEMPFAIL
    assert "unexpected error" in err


# --- bad mail --------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    parts = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(depth)
    )
    return f"To: {ADDRESS}\nSubject: deep\n".encode() + parts + b"\nhello\n"


BAD_MAIL = [
    ("no subject", mail(subject=""), "has no subject"),
    ("blank subject", mail(subject="   "), "has no subject"),
    ("NUL byte", mail().as_bytes().replace(b"db1:", b"db\x001:"), "NUL byte"),
    (
        "NUL in an encoded subject",
        f"To: {ADDRESS}\nSubject: =?utf-8?q?Disk=00full?=\n\nbody\n".encode(),
        "NUL character once decoded",
    ),
    (
        "NUL in a base64 body",
        f"To: {ADDRESS}\nSubject: x\nContent-Transfer-Encoding: base64\n\nYQBi\n".encode(),
        "NUL character once decoded",
    ),
    ("no headers", b"just some text, not a message\n", "no header fields"),
    ("empty input", b"", "no header fields"),
    ("nested too deeply", _nested(3000), "nested too deeply"),
]


@pytest.mark.parametrize(("case", "message", "reason"), BAD_MAIL, ids=[c[0] for c in BAD_MAIL])
def test_bad_mail_is_a_data_error_and_writes_nothing(
    inbox: NewKey, case: str, message: Any, reason: str
) -> None:
    status, out, err = deliver(message, ADDRESS)
    assert status == EX_DATAERR, err
    assert out == ""
    assert reason in err
    assert not Incident.objects.exists()
    assert not TimelineEvent.objects.exists()


def test_an_oversized_message_is_refused(inbox: NewKey, settings: Any) -> None:
    settings.EMAIL_INGEST_MAX_BYTES = 4096
    status, _, err = deliver(mail(body="x" * 5000), ADDRESS)
    assert status == EX_DATAERR
    assert "over the limit of 4,096 (EMAIL_INGEST_MAX_BYTES)" in err
    assert not Incident.objects.exists()


# --- as the MTA runs it: a process, its exit status and stderr -------------------


def _run(message: bytes, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "manage.py", "ingest_email", *args],
        input=message,
        cwd=ROOT,
        env=app_env(**env),
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_the_process_exits_with_the_status_postfix_and_exim_act_on(web: Service) -> None:
    integration(web, "email", email={"address": ADDRESS})
    good = mail().as_bytes()

    accepted = _run(good, f"--recipient={ADDRESS}")
    unknown = _run(good, "--recipient=nobody@triage.example")
    nul = _run(good.replace(b"/var", b"/v\x00r"), f"--recipient={ADDRESS}")

    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith(b"opened: incident #")
    assert (unknown.returncode, nul.returncode) == (EX_NOUSER, EX_DATAERR)
    assert unknown.stderr.startswith(b"ingest_email: No active email integration")
    assert nul.stderr.startswith(b"ingest_email: The message contains a NUL byte")
    assert Incident.objects.count() == 1


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_with_the_database_down_the_mta_keeps_the_message_for_later(web: Service) -> None:
    integration(web, "email", email={"address": ADDRESS})
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/triage"

    result = _run(mail().as_bytes(), f"--recipient={ADDRESS}", DATABASE_URL=down)

    assert result.returncode == EX_TEMPFAIL, result.stderr
    assert b"The database cannot be reached" in result.stderr
    assert not Incident.objects.exists()


# --- the integrations page and the admin -------------------------------------------


@pytest.fixture
def staff_client(root: User) -> Client:
    client = Client()
    client.force_login(root)
    return client


def _create(client: Client, web: Service, **fields: Any) -> Any:
    return client.post(
        "/integrations",
        {
            "service": web.pk,
            "kind": "email",
            "name": "legacy UPS",
            "grouping": "group",
            "severity_label": "severity",
            "default_severity": "critical",
            "rate_limit_per_minute": 120,
            "heartbeat_timeout_seconds": 300,
            **fields,
        },
    )


def test_staff_create_an_email_integration_and_its_address_is_listed(
    staff_client: Client, alice_client: Client, web: Service
) -> None:
    response = _create(staff_client, web, email_resolve_by_subject="on")

    assert response.status_code == 200
    settings_row = EmailSettings.objects.get()
    assert settings_row.address.startswith("web+")
    assert settings_row.resolve_by_subject
    html = response.content.decode()
    assert f'<code id="new-address">{settings_row.address}</code>' in html
    listed = alice_client.get("/integrations").content.decode()
    assert f'<code class="email-address">{settings_row.address}</code>' in listed
    assert f"sendmail {settings_row.address}" in listed


def test_a_chosen_address_is_kept_in_lower_case_and_must_be_free(
    staff_client: Client, web: Service
) -> None:
    assert _create(staff_client, web, email_address="UPS@Triage.Example").status_code == 200
    assert EmailSettings.objects.get().address == "ups@triage.example"

    again = _create(staff_client, web, email_address="ups@TRIAGE.example")
    assert again.status_code == 422
    assert again.context["form"].errors == {
        "email_address": ["Another email integration has this address."]
    }
    bad = _create(staff_client, web, email_dedup_pattern="(unclosed", email_address="x@y.example")
    assert bad.status_code == 422
    assert "Not a valid regular expression" in str(bad.context["form"].errors)
    assert Integration.objects.count() == 1


def test_the_admin_edits_the_address_and_rules(staff_client: Client, inbox: NewKey) -> None:
    pk = inbox.integration.pk
    assert staff_client.get("/admin/integrations/emailsettings/").status_code == 200
    response = staff_client.post(
        f"/admin/integrations/emailsettings/{pk}/change/",
        {
            "address": "New-Address@Triage.Example",
            "dedup_header": "",
            "dedup_pattern": r"host (\S+)",
            "resolve_by_subject": "on",
            "resolve_pattern": r"(?i)^resolved",
        },
    )
    assert response.status_code == 302
    row = EmailSettings.objects.get()
    assert (row.address, row.dedup_pattern, row.resolve_by_subject) == (
        "new-address@triage.example",
        r"host (\S+)",
        True,
    )
    assert deliver(mail("down: host db1"), "new-address@triage.example")[0] == 0
    assert deliver(mail(), ADDRESS)[0] == EX_NOUSER


def test_an_integration_made_an_email_one_in_the_admin_gets_an_address(
    staff_client: Client, web: Service, redis: Redis
) -> None:
    created = integration(web, "events_v2", name="was events")
    response = staff_client.post(
        f"/admin/integrations/integration/{created.integration.pk}/change/",
        {
            "service": web.pk,
            "kind": "email",
            "name": "was events",
            "grouping": "group",
            "severity_label": "severity",
            "default_severity": "error",
            "rate_limit_per_minute": 60,
            "heartbeat_timeout_seconds": 300,
        },
    )
    assert response.status_code == 302
    address = Integration.objects.get().email.address
    assert deliver(mail(), address)[0] == 0


def test_the_admin_adds_an_email_integration_with_an_address(
    staff_client: Client, web: Service
) -> None:
    response = staff_client.post(
        "/admin/integrations/integration/add/",
        {
            "service": web.pk,
            "kind": "email",
            "name": "old nagios",
            "grouping": "group",
            "severity_label": "severity",
            "default_severity": "error",
            "rate_limit_per_minute": 60,
            "heartbeat_timeout_seconds": 300,
        },
        follow=True,
    )
    address = EmailSettings.objects.get().address
    assert address in response.content.decode()
    page = staff_client.get(
        f"/admin/integrations/integration/{EmailSettings.objects.get().pk}/change/"
    )
    assert f"sendmail {address}".encode() in page.content
