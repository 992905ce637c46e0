"""The page behind a signed link in a notification: ``/a/<token>``.

Public (the person may have no session on the phone they were paged on); the
link itself says who acts. GET and HEAD only show the confirmation page, so a
mail or chat service opening the link to scan it changes nothing; the POST
from that page acts. The form carries a CSRF token like every other form: the
page sets the CSRF cookie, which needs no session. The link is a credential
for one action: ``triage.logs`` cuts every ``<token>`` route parameter from
log lines, this one included.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from paging import links
from triage import ratelimit
from triage.errors import DomainError


def _refused(request: HttpRequest, refusal: links.Refusal) -> HttpResponse:
    return render(
        request, "paging/action_link_refused.html", {"refusal": refusal}, status=refusal.status
    )


def _confirm(
    request: HttpRequest, link: links.Link, *, problem: str = "", status: int = 200
) -> HttpResponse:
    context = {
        "link": link,
        "incident": link.incident,
        "verb": link.action.label,
        "done": links.DONE[link.action],
        "possible": links.can_act(link) and not problem,
        "problem": problem,
    }
    return render(request, "paging/action_link.html", context, status=status)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@ratelimit.public_page
def action_link(request: HttpRequest, token: str) -> HttpResponse:
    found = links.read(token)
    if isinstance(found, links.Refusal):
        return _refused(request, found)
    if request.method != "POST":
        return _confirm(request, found)
    try:
        incident = links.use(found)
    except links.LinkUsed:
        return _refused(request, links.used_refusal(found))
    except DomainError as exc:
        return _confirm(request, found, problem=exc.detail, status=exc.status)
    context = {"incident": incident, "done": links.DONE[found.action], "person": found.user}
    return render(request, "paging/action_link_done.html", context)
