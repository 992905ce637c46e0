"""One Redis database per pytest-xdist worker.

Loaded with ``-p tests.workers`` by ``python -m triage.devstack test``. It has
to be a plugin rather than part of conftest.py: pytest-django reads the
Django settings before any conftest is imported, and the settings derive the
cache, the Celery broker and result backend from ``REDIS_URL`` once. Setting
``REDIS_URL`` here, at import, changes all of them together, and every process
a test starts (workers, beat, gunicorn) inherits it or gets it from
``settings.REDIS_URL``.

Worker ``gwN`` uses database ``base + N`` of the same server, ``base`` being
the one ``REDIS_URL`` names. The PostgreSQL side needs nothing: pytest-django
gives each worker its own test database (``test_<name>_gwN``).
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDIS_DATABASES = 16  # redis-server's default `databases`


def worker_number() -> int | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    match = re.fullmatch(r"gw(\d+)", worker)
    return int(match.group(1)) if match else None


def redis_url_for_worker(url: str, number: int) -> str:
    """``url`` moved to database ``its own + number``: the path for redis://,
    the ``db`` query parameter for unix://."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        db = int(query.get("db", "0") or 0) + number
        query["db"] = str(db)
        # Spelled out: urlunsplit would drop the empty host's "//".
        moved = f"unix://{parts.path}?{urlencode(query)}"
    else:
        db = int(parts.path.strip("/") or 0) + number
        moved = urlunsplit(parts._replace(path=f"/{db}"))
    if db >= REDIS_DATABASES:
        raise RuntimeError(
            f"xdist worker {number} would need Redis database {db} of {url}: "
            f"use fewer workers or a lower database in the URL"
        )
    return moved


def _isolate() -> None:
    number = worker_number()
    url = os.environ.get("REDIS_URL")
    if number is not None and url:
        os.environ["REDIS_URL"] = redis_url_for_worker(url, number)


_isolate()
