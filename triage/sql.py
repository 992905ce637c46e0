"""Hand-written reads for the hottest pages.

The dashboard is re-rendered every few seconds for every responder watching
it, and Django's ORM spent more time building its queries and model
instances than PostgreSQL spent answering them. Its reads are constant SQL
strings (values only ever travel as parameters) run through this helper;
tests hold each to the ORM query it replaces.
"""

from __future__ import annotations

from typing import Any

from django.db import connection


def fetch_all(sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows
