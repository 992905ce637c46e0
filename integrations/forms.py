from __future__ import annotations

from django import forms

from integrations.models import Integration, Kind


class IntegrationForm(forms.ModelForm[Integration]):
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
        return data
