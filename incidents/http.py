"""HTTP plumbing shared by the views: content negotiation, problem+json,
JSON bodies, and token-or-session authentication for endpoints that serve
both browsers and API clients."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from django_htmx.middleware import HtmxDetails

from incidents.models import TokenScope
from incidents.tokens import authenticate_token
from triage import jsonbody

View = TypeVar("View", bound=Callable[..., HttpResponse])

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


def _csrf_failure(request: HttpRequest) -> HttpResponse | None:
    """Run Django's CSRF check for a session-authenticated request."""
    check = CsrfViewMiddleware(lambda req: HttpResponse())
    check.process_request(request)
    return check.process_view(request, lambda req: HttpResponse(), (), {})


def api_or_login(scope: str = TokenScope.READ) -> Callable[[View], View]:
    """Allow a view to browsers (session + CSRF) and API clients (Bearer token).

    A request with an Authorization header is an API request: it must carry an
    active token with the scope, and CSRF does not apply (no cookies involved).
    Anything else must be a logged-in session, with CSRF enforced on writes.
    Views raise ``Http404`` for anything missing; API clients get it as a
    problem+json 404 with the same message, browsers as the 404 page.
    """

    def decorator(view: View) -> View:
        def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except Http404 as exc:
                if not wants_json(request):
                    raise
                return problem(404, "Not found", str(exc))

        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            header = request.headers.get("Authorization")
            if header is not None:
                kind, _, raw = header.partition(" ")
                token = authenticate_token(raw.strip()) if kind.lower() == "bearer" else None
                if token is None:
                    response = problem(
                        401, "Unauthorized", "Send a valid API token: Authorization: Bearer tri_..."
                    )
                    response["WWW-Authenticate"] = 'Bearer realm="triage"'
                    return response
                if not token.allows(scope):
                    needed = TokenScope(scope).value
                    return problem(403, "Forbidden", f"This token lacks the '{needed}' scope.")
                request.user = token.user
                return answer(request, *args, **kwargs)
            if not request.user.is_authenticated:
                if wants_json(request):
                    response = problem(401, "Unauthorized", "Log in or send an API token.")
                    response["WWW-Authenticate"] = 'Bearer realm="triage"'
                    return response
                return redirect_to_login(request.get_full_path())
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                failure = _csrf_failure(request)
                if failure is not None:
                    return failure
            return answer(request, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator
