from __future__ import annotations

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
