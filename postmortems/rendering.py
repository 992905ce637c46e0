"""Markdown to HTML that is safe to put in a page.

markdown-it-py renders CommonMark plus tables and strikethrough; nh3 then keeps
only an allow-list of tags, attributes and URL schemes, so a ``<script>``, a
``javascript:`` link or an ``onerror`` attribute written into a post-mortem
never reaches a browser. Inline HTML is passed to nh3 rather than escaped, so
the ``<br>`` that table cells use for line breaks renders as one.
"""

from __future__ import annotations

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])

ALLOWED_TAGS = {
    "a", "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
# No style attributes: a Content-Security-Policy without 'unsafe-inline' would block them.
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}


def markdown_html(text: str) -> SafeString:
    html = _MARKDOWN.render(text)
    cleaned = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
    # Sanitised by nh3 just above: an allow-list of tags, attributes and URL schemes.
    return mark_safe(cleaned)  # noqa: S308  # nosec B308 B703
