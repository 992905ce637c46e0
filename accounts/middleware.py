"""Show each signed-in person times in their own zone (``accounts.timezones``)."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.timezones import SESSION_KEY, chosen_time_zone, is_known
from triage.lean import browser_only


def session_time_zone(request: HttpRequest) -> str:
    """The signed-in person's zone, or "" (none chosen, or nobody signed in).

    Requests without a session cookie (API clients, probes, the public pages'
    anonymous readers) are answered without touching the session, so their
    responses gain no ``Vary: Cookie``.
    """
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return ""
    if not request.user.is_authenticated:
        return ""
    name = request.session.get(SESSION_KEY)
    if name is None:
        name = chosen_time_zone(request.user)
        request.session[SESSION_KEY] = name
    # A zone removed from this machine's database since it was chosen falls
    # back to the server's rather than failing every page.
    return str(name) if is_known(str(name)) else ""


class TimeZoneMiddleware:
    """Activate the person's zone for the request: templates' ``date`` and
    ``when`` filters and form fields then use it. The read model caches data
    (aware datetimes), never rendered times, so one person's zone cannot
    reach another's page. JSON answers format datetimes themselves in UTC.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = session_time_zone(request)
        if name:
            timezone.activate(ZoneInfo(name))
        try:
            return self.get_response(request)
        finally:
            # The thread serves someone else next.
            timezone.deactivate()


# Machine endpoints (triage.lean) have no session or user: skipped there.
TimeZone = browser_only(TimeZoneMiddleware)
