from __future__ import annotations

from typing import Any

from triage.checks import check_public_url, check_secret_key_strength


def test_a_weak_secret_key_is_flagged_by_the_deploy_check(settings: Any) -> None:
    settings.SECRET_KEY = "changeme"
    assert [message.id for message in check_secret_key_strength()] == ["triage.W001"]
    settings.SECRET_KEY = "a-long-and-random-looking-secret-key-of-more-than-fifty-chars"
    assert check_secret_key_strength() == []


def test_a_plain_http_public_url_is_flagged_in_production(settings: Any) -> None:
    settings.DEBUG = False
    settings.BASE_URL = "http://triage.example.com"
    assert [message.id for message in check_public_url()] == ["triage.W002"]
    settings.BASE_URL = "https://triage.example.com"
    assert check_public_url() == []
