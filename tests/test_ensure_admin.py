from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command


@pytest.mark.django_db
def test_first_admin_takes_credentials_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIAGE_ADMIN_USERNAME", "root-responder")
    monkeypatch.setenv("TRIAGE_ADMIN_PASSWORD", "correct horse battery staple")
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    assert "Created admin account 'root-responder'." in out.getvalue()
    assert "correct horse" not in out.getvalue()
    user = authenticate(username="root-responder", password="correct horse battery staple")
    assert user is not None
    assert user.is_superuser


@pytest.mark.django_db
def test_no_second_admin_is_created(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIAGE_ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin", stdout=StringIO())
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    assert "nothing to do" in out.getvalue()
    assert get_user_model().objects.filter(is_superuser=True).count() == 1
