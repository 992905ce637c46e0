from __future__ import annotations

from datetime import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from triage import env


def test_booleans_accept_the_usual_spellings(monkeypatch: pytest.MonkeyPatch) -> None:
    for spelling, expected in [
        ("yes", True),
        ("ON", True),
        ("1", True),
        ("off", False),
        ("", False),
    ]:
        monkeypatch.setenv("FLAG", spelling)
        assert env.env_bool("FLAG", not expected) is expected
    monkeypatch.delenv("FLAG")
    assert env.env_bool("FLAG", True) is True


def test_integers_are_parsed_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env.env_int("COUNT", 7) == 7
    monkeypatch.setenv("COUNT", "12")
    assert env.env_int("COUNT", 7, minimum=1) == 12
    monkeypatch.setenv("COUNT", "0")
    with pytest.raises(ImproperlyConfigured, match="COUNT must be at least 1"):
        env.env_int("COUNT", 7, minimum=1)


def test_numbers_are_parsed_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env.env_float("SECONDS", 0.5) == 0.5
    monkeypatch.setenv("SECONDS", "1.5")
    assert env.env_float("SECONDS", 0.5) == 1.5
    monkeypatch.setenv("SECONDS", "soon")
    with pytest.raises(ImproperlyConfigured, match="SECONDS must be a number"):
        env.env_float("SECONDS", 0.5)
    monkeypatch.setenv("SECONDS", "-1")
    with pytest.raises(ImproperlyConfigured, match="SECONDS must be at least 0"):
        env.env_float("SECONDS", 0.5)


def test_lists_are_comma_separated_and_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env.env_list("HOSTS", ["a"]) == ["a"]
    monkeypatch.setenv("HOSTS", " triage.example.com , ,localhost")
    assert env.env_list("HOSTS", []) == ["triage.example.com", "localhost"]


def test_business_hours_are_a_start_and_an_end_within_one_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert env.env_clock_range("HOURS", "09:00-18:00") == (time(9), time(18))
    monkeypatch.setenv("HOURS", " 07:30 - 16:00 ")
    assert env.env_clock_range("HOURS", "09:00-18:00") == (time(7, 30), time(16))
    for wrong, message in [
        ("9-5", "HOURS must look like 09:00-18:00"),
        ("09:00", "HOURS must look like 09:00-18:00"),
        ("18:00-09:00", "HOURS must start before it ends"),
    ]:
        monkeypatch.setenv("HOURS", wrong)
        with pytest.raises(ImproperlyConfigured, match=message):
            env.env_clock_range("HOURS", "09:00-18:00")


def test_a_file_variant_wins_over_the_plain_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    monkeypatch.setenv("TOKEN", "from-env")
    monkeypatch.setenv("TOKEN_FILE", str(secret))
    assert env.env_str("TOKEN") == "from-file"
