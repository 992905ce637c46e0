"""What every page's frame needs to know about the viewer's time zone."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from accounts.middleware import session_time_zone


def time_zone(request: HttpRequest) -> dict[str, object]:
    # A signed-in person with no zone yet: their page asks the browser for
    # one (static/js/triage.js). Checked in this order so anonymous pages
    # never touch the session.
    unset = (
        settings.SESSION_COOKIE_NAME in request.COOKIES
        and request.user.is_authenticated
        and session_time_zone(request) == ""
    )
    return {"time_zone_name": timezone.get_current_timezone_name(), "time_zone_unset": unset}
