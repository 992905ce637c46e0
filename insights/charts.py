"""The insights charts, drawn by pygal as SVG on the server and put inline in
the page: no chart script in the browser, nothing for the
Content-Security-Policy to allow.

pygal writes its tooltip configuration as an inline ``<script>`` into every
chart even with ``js=[]``; the CSP (script-src 'self') would block it and
log a violation, so an XML filter takes every script out of the tree before
it is written. Its ``<style>`` stays (style-src allows inline styles) and
takes its colours from the page's CSS variables, so the charts follow the
light and dark themes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

from insights.selectors import Health

# The people with the most pages; the table under the chart lists everyone.
PEOPLE_SHOWN = 15

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="var(--fg)",
    foreground_strong="var(--fg)",
    foreground_subtle="var(--line)",
    guide_stroke_color="var(--line)",
    major_guide_stroke_color="var(--line)",
    guide_stroke_dasharray="none",
    major_guide_stroke_dasharray="none",
    # Business hours, nights, weekends (and the single series of a bar chart).
    colors=("var(--accent)", "var(--sev3)", "var(--sev1)"),
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=13,
    value_font_size=12,
    title_font_size=15,
    no_data_font_size=18,
    opacity="1",
    opacity_hover=".85",
    transition="none",
)


@dataclass(frozen=True)
class Charts:
    per_day: SafeString
    pages: SafeString


def _without_scripts(root: Any) -> Any:
    for parent in list(root.iter()):
        for child in list(parent):
            if str(child.tag).rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


def _options(top: int, **extra: Any) -> dict[str, Any]:
    return {
        "js": [],
        "disable_xml_declaration": True,
        "style": STYLE,
        "width": 900,
        "height": 300,
        "margin": 12,
        "truncate_label": -1,
        "print_zeroes": False,
        # Counts: whole-number ticks, at most six of them.
        "y_labels": _whole_ticks(top),
        **extra,
    }


def _whole_ticks(top: int) -> list[int]:
    step = max(1, math.ceil(top / 5))
    return list(range(0, max(top, 1) + step, step))


def _render(chart: Any) -> SafeString:
    chart.add_xml_filter(_without_scripts)
    # pygal builds the SVG from numbers, usernames and dates, escaping text
    # as XML: the markup is safe to put in the page as it is.
    return mark_safe(str(chart.render(is_unicode=True)))  # noqa: S308  # nosec B308 B703


def render(figures: Health) -> Charts:
    every = max(1, len(figures.per_day) // 10)
    per_day = pygal.Bar(
        **_options(
            max((n for _, n in figures.per_day), default=0),
            show_legend=False,
            x_labels_major_every=every,
            show_minor_x_labels=False,
            no_data_text="No incidents",
        )
    )
    per_day.x_labels = [f"{day:%b} {day.day}" for day, _ in figures.per_day]
    per_day.add("Incidents", [n for _, n in figures.per_day] if figures.incidents else [])

    people = figures.pages[:PEOPLE_SHOWN]
    pages = pygal.HorizontalStackedBar(
        **_options(
            max((person.total for person in people), default=0),
            height=max(160, 60 + 28 * len(people)),
            legend_at_bottom=True,
            legend_at_bottom_columns=3,
            no_data_text="Nobody was paged",
        )
    )
    # pygal draws the first label at the bottom: reversed, the busiest is on top.
    people = people[::-1]
    pages.x_labels = [person.username for person in people]
    for title, attribute in (
        ("Business hours", "business_hours"),
        ("Nights", "nights"),
        ("Weekends", "weekends"),
    ):
        pages.add(title, [getattr(person, attribute) for person in people])
    return Charts(per_day=_render(per_day), pages=_render(pages))
