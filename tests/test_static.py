from __future__ import annotations

import pytest
from django.templatetags.static import static
from django.test import Client


def test_static_files_are_served_hashed_and_cacheable_forever(client: Client) -> None:
    url = static("vendor/htmx.min.js")
    assert url.startswith("/static/vendor/htmx.min.")
    assert url != "/static/vendor/htmx.min.js"
    response = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"]
    assert response["Content-Encoding"] == "gzip"


@pytest.mark.django_db
def test_the_favicon_is_served_at_the_root_and_named_by_every_page(
    client: Client, alice_client: Client
) -> None:
    """Browsers ask for /favicon.ico on pages that name no icon (the admin,
    error pages); the pages triage renders name theirs."""
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon["Content-Type"] in {"image/x-icon", "image/vnd.microsoft.icon"}
    assert b"".join(icon.streaming_content).startswith(b"\x00\x00\x01\x00")  # an ICO file
    assert "max-age" in icon["Cache-Control"]

    for page in (client.get("/login"), alice_client.get("/")):
        html = page.content.decode()
        link = html.split('<link rel="icon" href="', 1)[1].split('"', 1)[0]
        assert link.startswith("/static/favicon.")
        assert link.endswith(".svg")
        svg = client.get(link)
        assert svg.status_code == 200
        assert svg["Content-Type"] == "image/svg+xml"
