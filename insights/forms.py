from __future__ import annotations

from typing import Any

from django import forms

from incidents.selectors import service_choices
from insights.selectors import DEFAULT_DAYS, RANGES
from triage import readmodel


def services() -> list[tuple[str, str]]:
    """(slug, name) of every service, by name, as the dashboard's filter
    reads them: cached until a service changes (``triage.readmodel``)."""
    return readmodel.settings_cached("service-choices", service_choices)


class InsightsForm(forms.Form):
    """The range and the service, from the query string; both optional.
    The service is its slug: the page shows cached figures without reading
    the service's row (``insights.cache.cached_health_of``)."""

    days = forms.TypedChoiceField(
        choices=[(str(days), f"Last {days} days") for days in RANGES],
        coerce=int,
        required=False,
        empty_value=None,
    )
    service = forms.ChoiceField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.services = services()
        self.fields["service"].choices = [("", "All services"), *self.services]  # type: ignore[attr-defined]

    def clean_days(self) -> int:
        return self.cleaned_data["days"] or DEFAULT_DAYS
