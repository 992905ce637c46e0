"""Problem reports from the public page: spam checks and the incident they open.

Spam resistance without third parties: a honeypot field people never see,
and a signed timestamp rendered into the form so a submission faster than a
person can type (or a replay of a day-old form) is refused. The per-client
rate limit is in ``triage.ratelimit``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

from incidents.models import Incident, Service, Source
from incidents.services import open_incident

FILL_TOKEN_SALT = "postmortems.report.form"  # noqa: S105 - a signing namespace, not a secret
FILL_TOKEN_MAX_AGE = 24 * 3600  # a form older than a day must be reloaded


def fill_token(now: float | None = None) -> str:
    """A signed "this form was rendered at" stamp for the hidden field."""
    return signing.dumps({"t": time.time() if now is None else now}, salt=FILL_TOKEN_SALT)


def fill_token_problem(token: str, now: float | None = None) -> str | None:
    """Why the stamp is refused, or None when the form was filled at human speed."""
    now = time.time() if now is None else now
    try:
        rendered = float(
            signing.loads(token, salt=FILL_TOKEN_SALT, max_age=FILL_TOKEN_MAX_AGE)["t"]
        )
    except signing.SignatureExpired:
        return "This form is more than a day old. Reload the page and send your report again."
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return "This form was not sent from the report page. Reload the page and try again."
    if now - rendered < settings.REPORTS_MIN_FILL_SECONDS:
        return (
            "That was faster than a person can type. Take a moment to check your report, "
            "then send it again."
        )
    return None


def default_service() -> Service | None:
    slug = settings.REPORTS_DEFAULT_SERVICE
    return Service.objects.filter(slug=slug).first() if slug else None


@dataclass(frozen=True)
class Report:
    service: Service
    what: str
    started: str
    seeing: str
    expected: str
    contact: str = ""


def report_problem(report: Report) -> Incident:
    """Open an incident (source "report") for a public report.

    It pages like any other incident unless REPORTS_PAGE is false: then the
    opening event carries ``{"unpaged": true}`` for the paging code to honour.
    """
    details = "\n\n".join(
        part
        for part in (
            "Reported through the public report page.",
            f"When it started: {report.started}",
            f"What they see:\n{report.seeing}",
            f"What they expected:\n{report.expected}",
            f"Contact: {report.contact}" if report.contact else "",
        )
        if part
    )
    data: dict[str, object] = {"reported": True}
    if not settings.REPORTS_PAGE:
        data["unpaged"] = True
    return open_incident(
        service=report.service,
        title=report.what[:200],
        severity=settings.REPORTS_SEVERITY,
        details=details,
        source=Source.REPORT,
        actor=None,
        data=data,
    ).incident
