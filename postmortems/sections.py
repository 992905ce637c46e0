"""The editable sections of the post-mortem page: which form edits each, what
it shows, and which fields a valid form changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.utils.safestring import SafeString

from postmortems import document
from postmortems.drafting import FORMER_PLACEHOLDER_LINES
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
# What to write in each section people write, shown in its empty editor
# (never stored); the sections publishing warns about when left unwritten.
PLACEHOLDERS = {
    "summary": "What happened, in two or three sentences.",
    "impact": "Who was affected and how: which users or systems, what they saw, for how long.",
    "root-cause": (
        "What failed first?\nWhy did that failure reach users?\nWhy did nothing catch it sooner?"
    ),
    "lessons": "What went well: …\nWhat went wrong: …\nWhere we got lucky: …",
}


@dataclass(frozen=True)
class Section:
    name: str
    heading: str
    html: SafeString
    form: forms.Form | None = None  # set while the section is being edited


def _without_placeholders(lines: list[str]) -> list[str]:
    return [line for line in lines if line.strip() not in FORMER_PLACEHOLDER_LINES]


def _text(post_mortem: PostMortem, name: str) -> str:
    """A section's text as the editor starts from it: placeholder text an
    older draft stored is left out, so the HTML placeholder shows instead."""
    if name == "root-cause":
        return "\n".join(_without_placeholders(list(post_mortem.root_cause_chain)))
    text = str(getattr(post_mortem, name))
    return "\n".join(_without_placeholders(text.splitlines())).strip()


def unwritten(post_mortem: PostMortem) -> list[str]:
    """The headings of the sections people write that are empty or still
    hold placeholder text, in page order."""
    left = []
    for name in PLACEHOLDERS:
        lines = (
            list(post_mortem.root_cause_chain)
            if name == "root-cause"
            else str(getattr(post_mortem, name)).splitlines()
        )
        written = [line for line in lines if line.strip()]
        if not written or len(_without_placeholders(written)) < len(written):
            left.append(HEADINGS[name])
    return left


def form_for(post_mortem: PostMortem, name: str, data: Any = None) -> forms.Form:
    if name == "header":
        owner = post_mortem.owner.get_username() if post_mortem.owner else None
        initial = {
            "title": post_mortem.title,
            "affected_services": post_mortem.affected_services,
            "owner": owner,
        }
        return HeaderForm(data, initial=initial, prefix=name)
    form: forms.Form
    if name == "root-cause":
        form = RootCauseForm(data, initial={"steps": _text(post_mortem, name)}, prefix=name)
    else:
        form = TextSectionForm(data, initial={"text": _text(post_mortem, name)}, prefix=name)
    if name in PLACEHOLDERS:
        [field] = form.fields.values()
        field.widget.attrs["placeholder"] = PLACEHOLDERS[name]
    return form


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
