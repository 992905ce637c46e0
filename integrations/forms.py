from __future__ import annotations

from typing import Any, cast

from django import forms
from django.db import models

from integrations.models import DEFAULT_RESOLVE_PATTERN, EmailSettings, Integration, Kind


def _email_field(name: str, **overrides: Any) -> forms.Field:
    """The form field of an EmailSettings column, optional and labelled for
    the integration form (where it only counts for email integrations)."""
    column = cast("models.Field[Any, Any]", EmailSettings._meta.get_field(name))
    # The column's validators (a valid regular expression, an address) too:
    # the ModelForm checks only Integration's own columns. formfield() is None
    # only for non-editable columns; these are all editable.
    field = column.formfield(required=False, validators=column.validators, **overrides)
    return cast("forms.Field", field)


class IntegrationForm(forms.ModelForm[Integration]):
    # Email integrations only (an EmailSettings row); named email_* here.
    email_address = _email_field(
        "address",
        label="Email address",
        help_text="Email only. Blank: a new hard-to-guess address is made up.",
    )
    email_dedup_header = _email_field("dedup_header", label="Email: dedup by header")
    email_dedup_pattern = _email_field("dedup_pattern", label="Email: dedup pattern")
    email_resolve_by_subject = _email_field("resolve_by_subject", label="Email: resolve by subject")
    email_resolve_pattern = _email_field(
        "resolve_pattern", label="Email: resolve pattern", initial=DEFAULT_RESOLVE_PATTERN
    )

    class Meta:
        model = Integration
        fields = (
            "service",
            "kind",
            "name",
            "grouping",
            "severity_label",
            "default_severity",
            "rate_limit_per_minute",
            "heartbeat_timeout_seconds",
        )
        labels = {
            "grouping": "Alertmanager / Grafana grouping",
            "heartbeat_timeout_seconds": "Heartbeat timeout (seconds)",
        }
        help_texts = {
            "grouping": "Alertmanager and Grafana only.",
            "heartbeat_timeout_seconds": "Heartbeats only: no ping for this long opens an "
            "incident.",
        }

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("kind") != Kind.HEARTBEAT:
            # Irrelevant for other kinds; keep the default rather than a stray value.
            data["heartbeat_timeout_seconds"] = Integration._meta.get_field(
                "heartbeat_timeout_seconds"
            ).get_default()
        if data.get("kind") == Kind.EMAIL:
            address = str(data.get("email_address") or "").strip().lower()
            data["email_address"] = address
            if address and EmailSettings.objects.filter(address=address).exists():
                self.add_error("email_address", "Another email integration has this address.")
        return data

    def email_options(self) -> dict[str, Any] | None:
        """The EmailSettings fields for an email integration; None for other kinds."""
        data = self.cleaned_data
        if data.get("kind") != Kind.EMAIL:
            return None
        return {
            "address": data["email_address"],
            "dedup_header": data["email_dedup_header"],
            "dedup_pattern": data["email_dedup_pattern"],
            "resolve_by_subject": data["email_resolve_by_subject"],
            "resolve_pattern": data["email_resolve_pattern"] or DEFAULT_RESOLVE_PATTERN,
        }
