from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """People's access to triage: API tokens and how a request proves who it is.

    Every other app builds on it; it imports none of them.
    """

    name = "accounts"
