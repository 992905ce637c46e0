from __future__ import annotations

from django import forms

from incidents.models import Service
from insights.selectors import DEFAULT_DAYS, RANGES


class InsightsForm(forms.Form):
    """The range and the service, from the query string; both optional."""

    days = forms.TypedChoiceField(
        choices=[(str(days), f"Last {days} days") for days in RANGES],
        coerce=int,
        required=False,
        empty_value=None,
    )
    service = forms.ModelChoiceField(
        queryset=Service.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label="All services",
    )

    def clean_days(self) -> int:
        return self.cleaned_data["days"] or DEFAULT_DAYS
