"""The WSGI application gunicorn serves.

gunicorn imports this module in each worker before the worker accepts
connections, so whatever is loaded here is paid while the worker boots, not
by the first request it serves (after a deploy, a restart or a
``max_requests`` recycle, that request may be a page at 3 a.m.).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage.settings")

application = get_wsgi_application()


# The pages a responder opens first; compiling one costs tens of milliseconds.
FIRST_PAGES = ("incidents/dashboard.html", "incidents/detail.html", "registration/login.html")


def warm_up() -> None:
    """Import every view and compile the first pages now. Otherwise Django
    imports the URLconf on the first request, and it pulls in the MCP SDK and
    pydantic (0.7 s here; 1.5-5 s on a busy machine)."""
    from django.template.loader import get_template
    from django.urls import reverse

    reverse("dashboard")  # imports the views and builds the reverse lookup table
    for name in FIRST_PAGES:
        get_template(name)  # kept by the cached template loader


warm_up()
