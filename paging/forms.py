from __future__ import annotations

from typing import Any

import apprise
from django import forms
from django.contrib.auth.models import User
from django.db import transaction

from paging.models import ContactMethod, Rotation, RotationMember
from triage import outbound


class ContactMethodForm(forms.ModelForm[ContactMethod]):
    class Meta:
        model = ContactMethod
        fields = ("name", "url")
        labels = {"url": "Apprise URL"}
        help_texts = {
            "url": "For example ntfy://ntfy.sh/my-topic, tgram://bottoken/chatid, "
            "mailto://user:pass@example.com, json://hooks.example.com/page"
        }

    def clean_url(self) -> str:
        url = str(self.cleaned_data["url"]).strip()
        if not apprise.Apprise().add(url):
            raise forms.ValidationError(
                "Apprise does not recognise this URL. See the apprise wiki for the format of "
                "your service."
            )
        policy = outbound.current_policy()
        if not policy.allows_scheme(url):
            scheme = url.split("://", 1)[0].lower()
            raise forms.ValidationError(
                f"triage's outbound policy does not send to {scheme}:// URLs. Allowed here: "
                f"{', '.join(sorted(policy.schemes))}."
            )
        refused = outbound.refused_hosts(url, policy=policy)
        if refused:
            raise forms.ValidationError(
                f"triage's outbound policy refuses {refused[0]}: it is a private, local or "
                "reserved address. If it is a service of yours (a ntfy on your network, say), "
                "staff can allow the host in the admin."
            )
        return url


class RuleForm(forms.Form):
    contact_method = forms.ModelChoiceField(queryset=ContactMethod.objects.none())
    delay_minutes = forms.IntegerField(min_value=0, max_value=1440, initial=0)

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["contact_method"]
        field.queryset = ContactMethod.objects.filter(user=user)  # type: ignore[attr-defined]


class PersonChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    """People by full name and username, the way teammates know each other."""

    def label_from_instance(self, obj: Any) -> str:
        full = obj.get_full_name()
        return f"{full} ({obj.get_username()})" if full else str(obj.get_username())


class MomentField(forms.DateTimeField):
    """A date and time; a NUL byte is refused, not silently dropped by a parser."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"})

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise forms.ValidationError("Null characters are not allowed.")
        return super().to_python(value)


class PersonMultipleChoiceField(forms.ModelMultipleChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return PersonChoiceField.label_from_instance(self, obj)  # type: ignore[arg-type]


class RotationWithMembersForm(forms.ModelForm[Rotation]):
    """A rotation and its members, in turn order, edited in one line of the
    schedule's admin page (the admin cannot nest an inline in an inline)."""

    members = forms.CharField(
        required=False,
        max_length=2000,
        help_text="Usernames in turn order, separated by commas.",
    )

    class Meta:
        model = Rotation
        fields = ("name", "start", "shift_length", "shift_unit")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            names = self.instance.members.values_list("user__username", flat=True)
            self.fields["members"].initial = ", ".join(names)

    def clean_members(self) -> list[User]:
        names = [n.strip() for n in str(self.cleaned_data["members"]).split(",") if n.strip()]
        found = {user.username: user for user in User.objects.filter(username__in=names)}
        unknown = [name for name in names if name not in found]
        if unknown:
            raise forms.ValidationError(f"Nobody has the username {', '.join(unknown)}.")
        return [found[name] for name in names]

    def _save_m2m(self) -> None:
        # ModelForm.save runs this at once, or later as save_m2m() when the
        # admin's formset saves with commit=False: the rotation has a pk then.
        super()._save_m2m()  # type: ignore[misc]
        self._save_members()

    @transaction.atomic
    def _save_members(self) -> None:
        if "members" not in self.changed_data:
            return
        self.instance.members.all().delete()
        RotationMember.objects.bulk_create(
            RotationMember(rotation=self.instance, user=user, position=position)
            for position, user in enumerate(self.cleaned_data["members"])
        )


class ShiftRangeForm(forms.Form):
    """A range of time. Times without an offset are read in the time zone
    active while validating: the views activate the schedule's own."""

    start = MomentField()
    end = MomentField()


class CoverForm(ShiftRangeForm):
    asked = PersonChoiceField(
        queryset=None,
        required=False,
        empty_label="Anyone on the rotation",
        label="Ask",
    )
    note = forms.CharField(max_length=200, required=False)

    def __init__(self, *args: Any, people: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["asked"].queryset = people  # type: ignore[attr-defined]
