from __future__ import annotations

from typing import Any

from django import forms

from incidents.models import OPEN_STATUSES, Service, Severity, Status


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


class FilterForm(forms.Form):
    """Dashboard filters; invalid values are ignored rather than failing the page."""

    service = forms.ModelChoiceField(
        queryset=Service.objects.all(), to_field_name="slug", required=False, empty_label="All"
    )
    severity = forms.ChoiceField(choices=[("", "All"), *Severity.choices], required=False)
    status = forms.ChoiceField(
        choices=[("", "Open"), *[(s.value, s.label) for s in map(Status, OPEN_STATUSES)]],
        required=False,
    )
    q = forms.CharField(required=False, max_length=200, strip=True, label="Search")
