"""Who may call an endpoint that serves both browsers and API clients: a
logged-in session (with CSRF on writes) or a Bearer API token with the scope."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from accounts.models import TokenScope
from accounts.tokens import authenticate_token
from triage.http import problem, wants_json

View = TypeVar("View", bound=Callable[..., HttpResponse])


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
