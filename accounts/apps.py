from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """People's access to triage: API tokens and how a request proves who it is.

    Every other app builds on it; it imports none of them.
    """

    name = "accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from accounts.timezones import remember_time_zone

        # The zone is read at sign-in, so pages cost no query for it.
        user_logged_in.connect(remember_time_zone, dispatch_uid="accounts.time_zone")
