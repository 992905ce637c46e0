from __future__ import annotations

from django import forms

from accounts import timezones
from accounts.models import TokenScope


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.READ)


def _zone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in sorted(timezones.names())]


class TimeZoneForm(forms.Form):
    """A zone by its IANA name; anything else (junk, NUL bytes, a retired
    alias this machine lacks) is a form error, never stored."""

    time_zone = forms.ChoiceField(choices=_zone_choices, label="Time zone")
