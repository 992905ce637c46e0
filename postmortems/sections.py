"""The editable sections of the post-mortem page: which form edits each, what
it shows, and which fields a valid form changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.utils.safestring import SafeString

from postmortems import document
from postmortems.forms import HeaderForm, RootCauseForm, TextSectionForm
from postmortems.models import PostMortem
from postmortems.rendering import markdown_html

HEADINGS = {
    "header": "Facts",
    "summary": "Summary",
    "impact": "Impact",
    "timeline": "Timeline",
    "root-cause": "Root cause chain",
    "lessons": "Lessons learned",
}
TEXT_FIELDS = {"summary", "impact", "timeline", "lessons"}
ORDER = tuple(HEADINGS)


@dataclass(frozen=True)
class Section:
    name: str
    heading: str
    html: SafeString
    form: forms.Form | None = None  # set while the section is being edited


def form_for(post_mortem: PostMortem, name: str, data: Any = None) -> forms.Form:
    if name == "header":
        owner = post_mortem.owner.get_username() if post_mortem.owner else None
        initial = {
            "title": post_mortem.title,
            "affected_services": post_mortem.affected_services,
            "owner": owner,
        }
        return HeaderForm(data, initial=initial, prefix=name)
    if name == "root-cause":
        initial = {"steps": "\n".join(post_mortem.root_cause_chain)}
        return RootCauseForm(data, initial=initial, prefix=name)
    return TextSectionForm(data, initial={"text": getattr(post_mortem, name)}, prefix=name)


def changes_from(name: str, cleaned: dict[str, Any]) -> dict[str, Any]:
    if name == "header":
        return {
            "title": cleaned["title"],
            "affected_services": cleaned["affected_services"],
            "owner": cleaned["owner"],
        }
    if name == "root-cause":
        return {"root_cause_chain": cleaned["steps"]}
    return {name: cleaned["text"]}


def html_for(post_mortem: PostMortem, name: str) -> SafeString:
    if name == "header":
        return SafeString("")  # the template lays out the facts itself
    # Escaped as the exported document has it, so the editor shows what the page will.
    if name == "root-cause":
        return markdown_html(
            document.chain_markdown(post_mortem.root_cause_chain) or document.NOT_WRITTEN
        )
    return markdown_html(document.section_markdown(getattr(post_mortem, name)))


def section(post_mortem: PostMortem, name: str, form: forms.Form | None = None) -> Section:
    return Section(name=name, heading=HEADINGS[name], html=html_for(post_mortem, name), form=form)


def all_sections(post_mortem: PostMortem, editing: str = "") -> list[Section]:
    return [
        section(post_mortem, name, form_for(post_mortem, name) if name == editing else None)
        for name in ORDER
    ]
