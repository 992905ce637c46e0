"""HTTP plumbing shared by every app's views: content negotiation,
problem+json answers and JSON bodies. Who may call an endpoint (session or
API token) is accounts.http's business; this module knows no models, so the
project package's error handlers and middleware can use it too."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django_htmx.middleware import HtmxDetails

from triage import jsonbody

MAX_JSON_BODY = 512 * 1024


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


class BadRequest(Exception):
    def __init__(
        self, status: int, title: str, detail: str, errors: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors

    def response(self) -> JsonResponse:
        return problem(self.status, self.title, self.detail, self.errors)


def problem(
    status: int, title: str, detail: str = "", errors: dict[str, list[str]] | None = None
) -> JsonResponse:
    """An RFC 9457 problem+json response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    return JsonResponse(body, status=status, content_type="application/problem+json")


def field_errors(form: Any) -> dict[str, list[str]]:
    return {
        field: [str(error["message"]) for error in errors]
        for field, errors in form.errors.get_json_data().items()
    }


def wants_json(request: HttpRequest) -> bool:
    """API clients: token auth, a JSON body, or an Accept header preferring JSON."""
    if "Authorization" in request.headers or request.content_type == "application/json":
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


# Machine endpoints answer problem+json whoever asks (the API documents it):
# a client without a token or an Accept header still gets JSON there.
MACHINE_PATHS = ("/v1/", "/v2/", "/integrations/", "/mcp", "/chat/")


def answers_json(request: HttpRequest) -> bool:
    """Whether an error for this request is problem+json rather than a page."""
    return wants_json(request) or request.path_info.startswith(MACHINE_PATHS)


def declared_too_large(request: HttpRequest) -> bool:
    """Whether the declared Content-Length is over MAX_JSON_BODY: checked
    before the body is read, so a huge body is refused without being loaded."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if not (declared.isascii() and declared.isdigit()):
        return False  # absent or not a number: the body's own length decides
    return len(declared) > len(str(MAX_JSON_BODY)) or int(declared) > MAX_JSON_BODY


def read_json(request: HttpRequest) -> Any:
    """The JSON value in the body, read by triage.jsonbody: every JSON
    endpoint reads its body here. BadRequest (413, or 400 naming the field)
    otherwise.

    The declared length is checked before the body is read, so a huge body is
    refused without being loaded (and before Django's own, larger, limit).
    """
    if declared_too_large(request) or len(request.body) > MAX_JSON_BODY:
        raise BadRequest(413, "Request body too large", "The limit is 512 KB.")
    try:
        return jsonbody.loads(request.body or b"null")
    except jsonbody.InvalidJson as exc:
        raise BadRequest(400, "Malformed JSON", exc.detail, {exc.field: [exc.message]}) from None


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The JSON object in the body (see read_json)."""
    data = read_json(request)
    if not isinstance(data, dict):
        raise BadRequest(400, "Malformed JSON", "The body must be a JSON object.")
    return data
