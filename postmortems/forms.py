from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from incidents.models import Service
from postmortems import vocabulary
from postmortems.models import ActionStatus, PostMortemStatus
from postmortems.services import COMMIT_SHA

TEXT_LIMIT = 50_000
_NUMBERING = re.compile(r"^\s*(?:\d+[.)]|[-*+])\s+")


def _users() -> Any:
    return get_user_model().objects.filter(is_active=True).order_by("username")


class OwnerField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            queryset=_users(),
            to_field_name="username",
            required=False,
            empty_label="Nobody yet",
            error_messages={"invalid_choice": "Unknown user. Use an existing username."},
            **kwargs,
        )

    def label_from_instance(self, obj: Any) -> str:
        return str(obj.get_username())


class HeaderForm(forms.Form):
    title = forms.CharField(max_length=200, strip=True)
    affected_services = forms.CharField(max_length=300, strip=True)
    owner = OwnerField()


class TextSectionForm(forms.Form):
    text = forms.CharField(
        required=False, max_length=TEXT_LIMIT, widget=forms.Textarea(attrs={"rows": 8})
    )


class RootCauseForm(forms.Form):
    steps = forms.CharField(
        required=False,
        max_length=TEXT_LIMIT,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="One step per line, each causing the next.",
    )

    def clean_steps(self) -> list[str]:
        lines = str(self.cleaned_data["steps"]).splitlines()
        return [_NUMBERING.sub("", line).strip() for line in lines if line.strip()]


class ActionItemForm(forms.Form):
    """An action item from the editor or a JSON body; the type is case-insensitive."""

    priority = forms.ChoiceField(
        choices=[(p, p) for p in vocabulary.PRIORITIES],
        initial="P2",
        error_messages={"invalid_choice": "Unknown priority %(value)s. Use P0, P1, P2 or P3."},
    )
    action = forms.CharField(max_length=200, strip=True)
    type = forms.CharField(
        max_length=40,
        widget=forms.Select(choices=[("", "Choose…")] + [(t, t) for t in vocabulary.TYPES]),
    )
    details = forms.CharField(
        required=False, max_length=5_000, widget=forms.Textarea(attrs={"rows": 2})
    )
    owner = OwnerField()

    def clean_priority(self) -> str:
        return str(self.cleaned_data["priority"]).upper()

    def clean_type(self) -> str:
        word = str(self.cleaned_data["type"])
        canonical = vocabulary.canonical_type(word)
        if canonical is None:
            raise forms.ValidationError(vocabulary.unknown_type_message(word))
        return canonical


class ActionStatusForm(forms.Form):
    status = forms.ChoiceField(
        choices=ActionStatus.choices,
        error_messages={
            "invalid_choice": "Unknown status %(value)s. Use one of: "
            + ", ".join(ActionStatus.values)
            + "."
        },
    )


class FollowupForm(forms.Form):
    """What implemented an action item: a commit, a link, or both, and by whom."""

    commit = forms.CharField(required=False, max_length=40, strip=True)
    link = forms.URLField(required=False, max_length=500, assume_scheme="https")
    implemented_by = forms.CharField(max_length=100, strip=True)

    def clean_commit(self) -> str:
        commit = str(self.cleaned_data["commit"]).lower()
        if commit and not COMMIT_SHA.match(commit):
            raise forms.ValidationError("A commit SHA is 7 to 40 hexadecimal characters.")
        return commit

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        invalid = self.has_error("commit") or self.has_error("link")
        if not invalid and not data.get("commit") and not data.get("link"):
            raise forms.ValidationError("Give the commit SHA or a link to the change.")
        return data


class PostMortemStatusForm(forms.Form):
    status = forms.ChoiceField(choices=PostMortemStatus.choices)


class ReportForm(forms.Form):
    """The public report-a-problem form. The template adds the honeypot and the
    signed time stamp, which the view checks before this form (see
    ``postmortems.reports``)."""

    service = forms.ModelChoiceField(
        queryset=Service.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label="I'm not sure",
        label="Which service",
        error_messages={"invalid_choice": "Choose one of the listed services."},
    )
    what = forms.CharField(
        max_length=200,
        strip=True,
        label="What is broken",
        help_text="The service, page or feature, in one line.",
    )
    started = forms.CharField(
        max_length=100,
        strip=True,
        label="When did it start",
        help_text="An approximate time with its time zone, e.g. 14:00 UTC.",
    )
    seeing = forms.CharField(
        max_length=5_000,
        strip=True,
        label="What do you see",
        help_text="The error message, HTTP status code, or what happens.",
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    expected = forms.CharField(
        max_length=2_000,
        strip=True,
        label="What did you expect",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    contact = forms.CharField(
        required=False,
        max_length=200,
        strip=True,
        label="How can we reach you (optional)",
    )
