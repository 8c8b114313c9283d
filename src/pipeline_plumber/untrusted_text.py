"""Text we did not write (answers' errors, scorers' explanations quoting them, case ids from
others' eval folders), made safe for each place we print it.

Every function shortens first (a 100 KB error must not become a 100 KB table cell), then
removes what the target would interpret: control characters (a terminal runs ANSI escapes; XML
1.0 forbids most of them), HTML (GitHub renders `<img onerror>` in a step summary's Markdown),
and the Markdown that would break a table row or open a link, a code span or emphasis.
"""

from __future__ import annotations

import html
import re

CELL_CHARS = 200
TEXT_CHARS = 2000
ELLIPSIS = "…"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029]")
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + ELLIPSIS


def plain(text: str, limit: int = TEXT_CHARS) -> str:
    """One line for a terminal: no control characters (ANSI escapes included), no line breaks."""
    return _CONTROL.sub(" ", _LINE_BREAKS.sub(" ", shorten(text, limit)))


def markdown(text: str, limit: int = CELL_CHARS) -> str:
    """Inline Markdown that renders as the literal text: one line, HTML escaped, every Markdown
    punctuation mark backslash-escaped (so a pipe cannot end a table cell)."""
    return _MARKDOWN.sub(r"\\\1", html.escape(plain(text, limit), quote=True))


def code(text: str, limit: int = CELL_CHARS) -> str:
    """A Markdown code span of the text: backticks cannot be escaped inside one, so they go."""
    inner = plain(text, limit).replace("`", "'").strip() or "-"
    return f"`{inner}`"


def xml_text(text: str, limit: int = TEXT_CHARS) -> str:
    """Text an XML 1.0 document may hold (ElementTree escapes `&`, `<`, `>` and quotes itself,
    `]]>` included); characters XML forbids are replaced, line breaks kept."""
    return _NOT_XML.sub("?", shorten(text, limit))


def html_text(text: str, limit: int = TEXT_CHARS) -> str:
    """HTML-escaped, control characters removed, line breaks kept."""
    kept = _CONTROL.sub(" ", shorten(text, limit))
    return html.escape(kept, quote=True)
