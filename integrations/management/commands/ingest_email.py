"""manage.py ingest_email [--recipient ADDRESS]: one email message on stdin
opens, joins or resolves an incident of the email integration it was sent to.

Made for an MTA's pipe transport (Postfix ``pipe``, Exim ``pipe``; the
configuration is in docs/integrations.md). The exit status follows
``sysexits.h``, which both read:

- 0: done — also a second delivery of the same message, and an all-clear
  with no open incident to resolve;
- 65 (EX_DATAERR): the message cannot become an incident (too big, NUL
  bytes, unreadable, no subject); the MTA bounces it;
- 67 (EX_NOUSER): no active email integration has the address; bounced;
- 75 (EX_TEMPFAIL): PostgreSQL unreachable, the integration over its rate
  limit, or an unexpected error; the MTA keeps the message and retries.

Every refusal says why on stderr (the MTA puts it in the bounce or its log)
and happens before anything is written.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, NoReturn

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import InterfaceError, OperationalError

from integrations import email_routes, services
from integrations.mail import MailError, parse
from triage import ratelimit

logger = logging.getLogger(__name__)

EX_DATAERR = 65
EX_NOUSER = 67
EX_TEMPFAIL = 75


class Command(BaseCommand):
    help = (
        "Read one email message (RFC 5322) on stdin and open, join or resolve an incident "
        "of the email integration it is addressed to. For MTA pipe transports; exits 65, 67 "
        "or 75 (sysexits.h) when the message is refused."
    )
    # Run for every message an MTA delivers: the web and worker check the
    # configuration at start, this needs to be quick.
    requires_system_checks: list[str] = []
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--recipient",
            action="append",
            default=[],
            metavar="ADDRESS",
            help="The envelope recipient (Postfix: ${recipient}, Exim: $local_part@$domain). "
            "Without it the address is looked for in the Delivered-To, X-Original-To, "
            "Envelope-To, To and Cc headers.",
        )

    def _refuse(self, status: int, message: str) -> NoReturn:
        self.stderr.write(f"ingest_email: {message}")
        sys.exit(status)

    def handle(self, *args: Any, **options: Any) -> None:
        stream = options.get("stdin") or sys.stdin.buffer
        limit = settings.EMAIL_INGEST_MAX_BYTES
        raw = stream.read(limit + 1)  # one byte over is enough to know it is too big
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            mail = parse(raw, max_bytes=limit)
        except MailError as exc:
            self._refuse(EX_DATAERR, str(exc))
        recipients = options["recipient"] or list(mail.recipients)
        try:
            integration = email_routes.integration_for(recipients)
            if integration is None:
                shown = ", ".join(recipients[:5]) or "none found in the headers"
                self._refuse(
                    EX_NOUSER,
                    f"No active email integration has the address {shown}. Its address is "
                    "on triage's Integrations page.",
                )
            verdict = ratelimit.hit(
                "integration", str(integration.pk), limit=integration.rate_limit_per_minute
            )
            if not verdict.allowed:
                self._refuse(
                    EX_TEMPFAIL,
                    f"Integration {integration.name!r} may receive "
                    f"{integration.rate_limit_per_minute} messages a minute; try again in "
                    f"{verdict.retry_after} s.",
                )
            outcome = services.ingest_email(integration, mail)
        except (OperationalError, InterfaceError) as exc:
            self._refuse(
                EX_TEMPFAIL,
                f"The database cannot be reached ({' '.join(str(exc).split())}). Try again later.",
            )
        except Exception:
            # A bug must not bounce an alert: the MTA keeps it and retries,
            # and the traceback is in the log.
            logger.exception("ingest_email failed")
            self._refuse(EX_TEMPFAIL, "An unexpected error (logged). Try again later.")
        where = f"#{outcome.incident_id}" if outcome.incident_id else "none open"
        self.stdout.write(
            f"{outcome.action}: incident {where} on {integration.service.name} "
            f"(integration {integration.name!r}, dedup key {outcome.dedup_key})"
        )
