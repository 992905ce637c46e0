"""Refuse characters no URL can usefully hold, with a 400.

A NUL character cannot be stored in PostgreSQL text, nor compared with it:
a ``%00`` in a path parameter (``/oncall/people/%00.ics``) or a query
parameter reaching a lookup fails the request with a 500. A lone surrogate
cannot be encoded as UTF-8 at all. Neither names anything, so this
middleware refuses both in every URL, once, before any view runs, naming the
parameter. (Django decodes URLs with ``errors="replace"``, so a surrogate
arrives only from callers that hand Django text directly; it is refused the
same way.)

Bodies are not read here. Form fields are Django forms' business: every
CharField refuses NUL with a field error (and form bodies, too, are decoded
with ``errors="replace"``), so the form is shown again with the error, and
a login attempt still counts against its address. JSON bodies are refused by
triage.jsonbody, in each endpoint's own error shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.html import escape

from triage.http import answers_json, problem

_REFUSED = re.compile("[\x00\ud800-\udfff]")


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
    if _REFUSED.search(request.path_info):
        yield "path", f"The URL {_CHARACTERS}."
    yield _refused_in("query parameter", request.GET)


class RefuseUnstorableCharactersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = next((found for found in _refusals(request) if found), None)
        if refusal is None:
            return self.get_response(request)
        field, detail = refusal
        if answers_json(request):
            return problem(400, "Bad request", detail, {field: [detail]})
        return HttpResponse(
            "<!doctype html><title>Bad request · triage</title><h1>Bad request</h1>"
            f"<p>{escape(detail)}</p>",
            status=400,
        )
