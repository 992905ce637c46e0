from __future__ import annotations

from django import forms

from accounts.models import TokenScope


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.READ)
