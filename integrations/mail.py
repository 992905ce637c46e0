"""One email message, read for an email integration (no Django here).

``parse`` turns the raw bytes an MTA pipes to ``manage.py ingest_email`` into
a ``Mail``: the decoded subject (encoded words such as ``=?utf-8?q?…?=``
undone), the text body (the text/plain part; the text of the HTML part when
there is no plain one; attachments ignored), the Message-ID and the addresses
the message was delivered to. Anything that cannot become an incident raises
``MailError`` with a sentence for the sender's bounce, before anything is
written.

``dedup_text`` and ``is_resolution`` apply an integration's rules: by default
the dedup key is the subject without reply prefixes (``Re:``, ``Fwd:``) and
status tags (``[FIRING:2]``, ``PROBLEM:``, ``[RESOLVED]``), so an alert mail
and its all-clear land on the same incident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage, Message, MIMEPart
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import getaddresses
from html.parser import HTMLParser

DETAILS_LIMIT = 65_536  # characters of body kept as the incident's details
# User-set patterns run on at most this much of a subject or header, so a
# huge folded header cannot make a regular expression crawl.
PATTERN_TEXT_LIMIT = 1000
# Where the delivery address may be found when the MTA does not pass it: the
# headers Postfix (flags D, O), Exim (envelope_to_add) and others add, then
# the visible ones.
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc")

_REPLY_PREFIX = re.compile(r"^\s*(?:re|fw|fwd|aw|wg|sv|vs|tr)\s*(?:\[\d+\])?\s*:\s*", re.I)
_FIRING_TAG = re.compile(
    r"^\W*?(?:\[\s*(?:firing|alert|alerting|problem|triggered|critical|warning)\b[^\]]*\]"
    r"|(?:firing|alerting|problem|triggered)\b\s*[:\-\u2013\u2014]?)",
    re.I,
)
_EDGE_PUNCTUATION = " \t*:|-\u2013\u2014"


class MailError(ValueError):
    """The message cannot become an incident; the text says why."""


@dataclass(frozen=True)
class Mail:
    subject: str  # decoded, on one line
    body: str
    message_id: str  # "" when the message has none
    sender: str
    recipients: tuple[str, ...]  # lower-cased, in RECIPIENT_HEADERS order
    headers: dict[str, str]  # lower-cased name → first value, decoded

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def _clean(text: str) -> str:
    """Text PostgreSQL can store: lone surrogates (from undecodable bytes)
    become U+FFFD. NUL is refused by the caller rather than dropped."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _TextFromHtml(HTMLParser):
    """The text a person reads in an HTML mail: no markup, no scripts or
    styles, a line break for each block element."""

    _SKIP = frozenset({"script", "style", "head", "title", "template"})
    # A blank line around paragraphs, a line break for rows and list items.
    _PARAGRAPH = frozenset(
        {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "pre", "blockquote", "hr"}
    )
    _LINE = frozenset({"br", "div", "tr", "li", "section", "article", "header", "footer"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._PARAGRAPH:
            self.parts.append("\n\n")
        elif tag in self._LINE:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._PARAGRAPH:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextFromHtml()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def _tidy(text: str) -> str:
    """Trailing spaces and runs of blank lines out; at most DETAILS_LIMIT characters."""
    lines = [" ".join(line.split()) for line in text.replace("\r\n", "\n").split("\n")]
    tidy = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if len(tidy) > DETAILS_LIMIT:
        tidy = tidy[: DETAILS_LIMIT - 1].rstrip() + "…"
    return tidy


def _content(part: Message) -> str:
    try:
        text = part.get_content() if isinstance(part, MIMEPart) else ""
    except (LookupError, ValueError):
        # An unknown or lying charset: the bytes as UTF-8, the rest replaced.
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return str(text)


def _body(message: EmailMessage) -> str:
    plain = message.get_body(preferencelist=("plain",))
    text = _content(plain) if plain is not None else ""
    if not text.strip():
        html = message.get_body(preferencelist=("html",))
        text = html_to_text(_content(html)) if html is not None else ""
    return _tidy(_clean(text))


def _recipients(message: EmailMessage) -> tuple[str, ...]:
    found: list[str] = []
    for name in RECIPIENT_HEADERS:
        values = [str(value) for value in message.get_all(name, [])]
        for _, address in getaddresses(values):
            address = _clean(address).strip().lower()
            if address and address not in found:
                found.append(address)
    return tuple(found)


def parse(raw: bytes, *, max_bytes: int) -> Mail:
    """The message in ``raw``; ``MailError`` when it cannot become an incident."""
    if len(raw) > max_bytes:
        raise MailError(
            f"The message is {len(raw):,} bytes, over the limit of {max_bytes:,} "
            "(EMAIL_INGEST_MAX_BYTES)."
        )
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise MailError(f"The message contains a NUL byte (at byte {nul}).")
    try:
        # policy.default builds EmailMessage objects (get_body, decoded headers).
        message = BytesParser(policy=default_policy).parsebytes(raw)
        if not message.keys():
            raise MailError("This is not an RFC 5322 message: it has no header fields.")
        subject = _clean(_one_line(str(message.get("Subject", ""))))
        headers = {
            name.lower(): _clean(_one_line(str(value))) for name, value in reversed(message.items())
        }
        body = _body(message)
        recipients = _recipients(message)
    except RecursionError:
        raise MailError("The message's MIME parts are nested too deeply to read.") from None
    except MailError:
        raise
    except Exception as exc:  # the email package's errors have no common base
        raise MailError(f"The message cannot be read: {exc}.") from exc
    if not subject:
        raise MailError("The message has no subject: the subject becomes the incident's title.")
    if "\x00" in subject or "\x00" in body:
        raise MailError("The message's subject or text contains a NUL character once decoded.")
    return Mail(
        subject=subject,
        body=body,
        message_id=headers.get("message-id", "").strip(),
        sender=headers.get("from", ""),
        recipients=recipients,
        headers={name: value for name, value in headers.items() if "\x00" not in value},
    )


def _without_reply_prefixes(subject: str) -> str:
    while True:
        shorter = _REPLY_PREFIX.sub("", subject, count=1)
        if shorter == subject:
            return subject
        subject = shorter


def is_resolution(subject: str, resolve_pattern: str) -> bool:
    """Whether the subject says the problem is over (by the integration's pattern)."""
    text = _without_reply_prefixes(subject)[:PATTERN_TEXT_LIMIT]
    return re.search(resolve_pattern, text) is not None


def normalized_subject(subject: str, resolve_pattern: str) -> str:
    """The subject as the default dedup rule sees it: no reply prefixes, no
    resolution text (by the pattern), no leading firing tag, case folded."""
    text = _without_reply_prefixes(subject)[:PATTERN_TEXT_LIMIT]
    if resolve_pattern:
        text = re.sub(resolve_pattern, " ", text, count=1)
    text = _FIRING_TAG.sub(" ", text, count=1)
    return _one_line(text).strip(_EDGE_PUNCTUATION).casefold()


def dedup_text(
    mail: Mail, *, header: str = "", pattern: str = "", resolve_pattern: str = ""
) -> str:
    """The text the dedup key is made of, by the integration's rule:

    - no header, no pattern: the normalized subject;
    - a header: its value (messages without it: the normalized subject);
    - a pattern: its group (or whole match) in the subject or the header;
      no match: the normalized subject or the header's whole value.
    """
    source = mail.header(header) if header else ""
    if pattern:
        target = source or _without_reply_prefixes(mail.subject)
        match = re.search(pattern, target[:PATTERN_TEXT_LIMIT])
        if match is not None:
            found = match.group(1) if match.re.groups else match.group(0)
            if found and found.strip():
                return _one_line(found).casefold()
    if source:
        return _one_line(source)[:PATTERN_TEXT_LIMIT]
    return normalized_subject(mail.subject, resolve_pattern) or mail.subject.casefold()
