from __future__ import annotations

from django.apps import AppConfig


class PagingConfig(AppConfig):
    name = "paging"
