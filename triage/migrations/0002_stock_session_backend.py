"""Sessions logged in by triage's former backend name ModelBackend instead.

A session names the backend that logged its user in, and Django logs the
user out when that name is no longer in AUTHENTICATION_BACKENDS. Until this
release it was ``triage.sessions.UserBackend`` (ModelBackend with a
hand-written read); now it is ModelBackend itself. Rewriting the name in each
live session keeps everyone logged in across the upgrade; the reverse does
the opposite, for a rollback. Sessions that cannot be read (another
SECRET_KEY, tampered) are left alone: Django ignores them anyway.
"""

from typing import Any

from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import migrations
from django.utils import timezone

FORMER = "triage.sessions.UserBackend"
STOCK = "django.contrib.auth.backends.ModelBackend"


def rename_backend(apps: Any, old: str, new: str) -> None:
    session_model = apps.get_model("sessions", "Session")
    # The encoding is the engine's (signed with SECRET_KEY, salted with the
    # class name SessionStore, which the former engine shared).
    store = SessionStore()
    live = session_model.objects.filter(expire_date__gt=timezone.now())
    for session in live.iterator(chunk_size=500):
        data = store.decode(session.session_data)
        if data.get(BACKEND_SESSION_KEY) != old:
            continue
        data[BACKEND_SESSION_KEY] = new
        # Only if unchanged since it was read: a server still running the
        # former release may save this session meanwhile, and its write wins
        # (that session then logs in once more) rather than being lost.
        session_model.objects.filter(pk=session.pk, session_data=session.session_data).update(
            session_data=store.encode(data)
        )


def forwards(apps: Any, schema_editor: Any) -> None:
    rename_backend(apps, FORMER, STOCK)


def backwards(apps: Any, schema_editor: Any) -> None:
    rename_backend(apps, STOCK, FORMER)


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0001_outbound_allow_rule"),
        ("sessions", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=True)]
