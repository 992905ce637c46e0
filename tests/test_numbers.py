"""Numbers people and clients type: only ASCII digits count, and nothing
they type can turn into a 500 (``"²".isdigit()`` is true; ``int("²")`` raises)."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from tests.factories import IncidentFactory
from triage.http import declared_too_large
from triage.numbers import BIGINT_MAX, ascii_int


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        ("007", 7),
        (str(BIGINT_MAX), BIGINT_MAX),
        (str(BIGINT_MAX + 1), None),
        ("9" * 5000, None),  # int() would refuse more than 4,300 digits
        ("²", None),
        ("٣", None),  # an Arabic-Indic three: a digit, not ASCII
        ("-1", None),
        ("4 2", None),
        ("", None),
    ],
)
def test_only_ascii_digits_in_range_are_numbers(text: str, expected: int | None) -> None:
    assert ascii_int(text) == expected


@pytest.mark.parametrize(
    ("declared", "too_large"),
    [
        ("", False),
        ("²", False),
        ("abc", False),
        ("1024", False),
        ("524289", True),
        ("9" * 5000, True),
    ],
)
def test_a_declared_length_is_judged_without_error(declared: str, too_large: bool) -> None:
    # (Over HTTP gunicorn answers 400 to a Content-Length that is not ASCII
    # digits before Django sees it; this is what reaches the check otherwise.)
    request = RequestFactory().post("/", data=b"{}", content_type="application/json")
    request.META["CONTENT_LENGTH"] = declared
    assert declared_too_large(request) is too_large


@pytest.mark.django_db
def test_odd_digits_in_searches_are_plain_text_not_errors(alice_client: Client) -> None:
    IncidentFactory(title="disk ² full")
    for q in ("#²", "²", "#٣", "#" + "9" * 150):
        response = alice_client.get("/", {"q": q})
        assert response.status_code == 200, q
    titles = [row.title for row in alice_client.get("/", {"q": "²"}).context["page"].object_list]
    assert titles == ["disk ² full"]
