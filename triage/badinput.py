"""Refuse characters no page can use, in the URL and in form bodies, with a 400.

A NUL character cannot be stored in PostgreSQL text, nor compared with it:
a ``%00`` in a path parameter (``/oncall/people/%00.ics``), a query
parameter (``/?q=%00``) or a form field reaching a lookup fails the request
with a 500. A lone surrogate cannot be encoded as UTF-8 at all. Neither can
be typed into a browser, so this middleware refuses both everywhere, once,
before any view runs, naming the parameter or field. (Django decodes URLs
and form bodies with ``errors="replace"``, so a surrogate arrives only from
callers that hand Django text directly; it is refused the same way.)

JSON bodies are not read here: triage.jsonbody refuses the same characters
in them, in each endpoint's own error shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.html import escape

from incidents.http import problem, wants_json

_REFUSED = re.compile("[\x00\ud800-\udfff]")
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


# (field, what is wrong with it)
Refusal = tuple[str, str]
_CHARACTERS = "contains a NUL character or a lone surrogate"


def _refused_in(where: str, data: QueryDict) -> Refusal | None:
    for key, values in data.lists():
        if _REFUSED.search(key) or any(_REFUSED.search(value) for value in values):
            name = _REFUSED.sub("?", key)[:64]
            return name, f"The {where} '{name}' {_CHARACTERS}."
    return None


def _refusals(request: HttpRequest) -> Iterator[Refusal | None]:
    # Lazily: the form body is read only if the URL was fine.
    if _REFUSED.search(request.path_info):
        yield "path", f"The URL {_CHARACTERS}."
    yield _refused_in("query parameter", request.GET)
    if request.method == "POST" and request.content_type in _FORMS:
        yield _refused_in("form field", request.POST)


class RefuseUnstorableCharactersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = next((found for found in _refusals(request) if found), None)
        if refusal is None:
            return self.get_response(request)
        field, detail = refusal
        if wants_json(request):
            return problem(400, "Bad request", detail, {field: [detail]})
        return HttpResponse(
            "<!doctype html><title>Bad request · triage</title><h1>Bad request</h1>"
            f"<p>{escape(detail)}</p>",
            status=400,
        )
