from __future__ import annotations

from datetime import date
from typing import Any

from django import forms

from incidents.models import OPEN_STATUSES, Service, Severity, Status
from incidents.selectors import STATUS_ALL


class IncidentForm(forms.Form):
    """A new incident, from the web form or a JSON body."""

    title = forms.CharField(max_length=200, strip=True)
    service = forms.ModelChoiceField(
        queryset=Service.objects.all(),
        to_field_name="slug",
        error_messages={"invalid_choice": "Unknown service. Use the slug of an existing service."},
    )
    severity = forms.ChoiceField(
        choices=Severity.choices,
        initial=Severity.ERROR,
        error_messages={
            "invalid_choice": "Unknown severity. Use one of: " + ", ".join(Severity.values) + "."
        },
    )
    details = forms.CharField(required=False, max_length=20_000, widget=forms.Textarea)
    dedup_key = forms.CharField(required=False, max_length=255, strip=True)
    idempotency_key = forms.CharField(required=False, max_length=255, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["service"].label_from_instance = lambda service: service.name  # type: ignore[attr-defined]


class NoteForm(forms.Form):
    text = forms.CharField(max_length=10_000, strip=True, widget=forms.Textarea(attrs={"rows": 3}))


class PublicTitleForm(forms.Form):
    public_title = forms.CharField(
        max_length=200,
        required=False,
        strip=True,
        label="Public title",
        help_text="What the public status page calls this incident. Empty: the default sentence.",
    )


# The dashboard's status filter: "" is the open incidents (the default, in
# rank order); "all" and "resolved" are the history, newest first.
STATUS_FILTER_CHOICES = [
    ("", "Open"),
    *[(s.value, s.label) for s in map(Status, OPEN_STATUSES)],
    (Status.RESOLVED.value, Status.RESOLVED.label),
    (STATUS_ALL, "All"),
]
# Dates a person means: PostgreSQL and zone arithmetic are safe well inside.
_FIRST_YEAR, _LAST_YEAR = 1970, 9998


class FilterForm(forms.Form):
    """Dashboard filters. A value that is not valid is dropped (the rest still
    filter) and named on the page: a stale bookmark still shows incidents."""

    service = forms.ModelChoiceField(
        queryset=Service.objects.all(),
        to_field_name="slug",
        required=False,
        empty_label="All",
        error_messages={"invalid_choice": "no service with that slug"},
    )
    severity = forms.ChoiceField(
        choices=[("", "All"), *Severity.choices],
        required=False,
        error_messages={"invalid_choice": "use one of " + ", ".join(Severity.values)},
    )
    status = forms.ChoiceField(
        choices=STATUS_FILTER_CHOICES,
        required=False,
        error_messages={
            "invalid_choice": "use one of "
            + ", ".join(value for value, _ in STATUS_FILTER_CHOICES if value)
        },
    )
    q = forms.CharField(required=False, max_length=200, strip=True, label="Search")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("from"), data.get("to")
        if start and end and start > end:
            self.add_error("to", "the end date is before the start date")
        return data


def _opened_date(label: str) -> forms.DateField:
    # ISO dates only (what <input type="date"> sends): no locale guessing.
    return forms.DateField(
        required=False,
        label=label,
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": "use a date such as 2026-11-30"},
        validators=[_sensible_year],
    )


def _sensible_year(value: date) -> None:
    if not _FIRST_YEAR <= value.year <= _LAST_YEAR:
        raise forms.ValidationError(f"use a year from {_FIRST_YEAR} to {_LAST_YEAR}")


# "from" is a Python keyword: these two are added by name. The dates are in
# the zone times are shown in (incidents.selectors.opened_between).
FilterForm.base_fields["from"] = _opened_date("Opened from")
FilterForm.base_fields["to"] = _opened_date("Opened to")
