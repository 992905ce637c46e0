"""Who is asking: the session and its user, read with one small query each.

Every page view reads both before it does anything else, and Django's ORM
took several times as long as PostgreSQL to fetch them (building the
query and the instance). These are Django's own database session store and
model backend with only the read swapped for constant SQL (see triage.sql);
writes, expiry, login, logout and password checks are Django's.
tests/test_sessions.py holds them to what Django's own would do.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.models import Session
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from triage.sql import fetch_all

_SESSION_SQL = """
SELECT session_data, expire_date FROM django_session
WHERE session_key = %(key)s AND expire_date > %(now)s
"""
# auth_user's columns in the model's field order, for Model.from_db.
USER_FIELDS = (
    "id",
    "password",
    "last_login",
    "is_superuser",
    "username",
    "first_name",
    "last_name",
    "email",
    "is_staff",
    "is_active",
    "date_joined",
)
_USER_SQL = """
SELECT id, password, last_login, is_superuser, username, first_name, last_name,
       email, is_staff, is_active, date_joined
FROM auth_user WHERE id = %(id)s
"""


class SessionStore(DatabaseSessionStore):
    """``SESSION_ENGINE = "triage.sessions"``."""

    def _get_session_from_db(self) -> Session | None:
        key = self.session_key
        rows = fetch_all(_SESSION_SQL, {"key": key, "now": timezone.now()}) if key else []
        if key is None or not rows:
            # As Django's: an unknown or expired key starts a new session.
            self._session_key = None
            return None
        data, expires = rows[0]
        return Session(session_key=key, session_data=data, expire_date=expires)


class UserBackend(ModelBackend):
    """Django's ModelBackend (passwords, permissions) with a cheaper ``get_user``."""

    def get_user(self, user_id: Any) -> User | None:
        rows = fetch_all(_USER_SQL, {"id": user_id})
        if not rows:
            return None
        user = User.from_db(DEFAULT_DB_ALIAS, list(USER_FIELDS), rows[0])
        return user if self.user_can_authenticate(user) else None
