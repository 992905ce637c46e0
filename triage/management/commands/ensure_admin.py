"""Create the first admin account when there is none.

Credentials come from TRIAGE_ADMIN_USERNAME / TRIAGE_ADMIN_PASSWORD (or
TRIAGE_ADMIN_PASSWORD_FILE); without a password one is generated and printed
once. Nothing happens when a superuser already exists, so it is safe on every
start.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from triage.env import env_str


class Command(BaseCommand):
    help = "Create the first admin account if no superuser exists yet."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin account exists already; nothing to do.")
            return
        username = env_str("TRIAGE_ADMIN_USERNAME", "admin") or "admin"
        password = env_str("TRIAGE_ADMIN_PASSWORD")
        generated = not password
        if not password:
            password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser(
            username=username, email=env_str("TRIAGE_ADMIN_EMAIL", "") or "", password=password
        )
        if generated:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created admin account {username!r} with password {password}\n"
                    "This password is shown only once: keep it, or change it in the admin."
                )
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Created admin account {username!r}."))
