"""A plain-text rendering of an HTML body, for emails that have no text/plain part.

For search, previews and the text column of an email activity. It is not a sanitizer and
must never be used as one: sanitizing HTML for display (nh3) happens where it is shown.
Reads the HTML with ``htmlscan.tokens``, in time linear in its length, as the stdlib
``html.parser`` would have it (which it replaced: that rescans the rest of the input for
every unterminated construct, so ``'<a ' * 20_000`` took half a minute): only script and
style hold raw text, a construct left open at the end is text, character references are
decoded as HTML5 has them. Never raises for any input.
"""

from __future__ import annotations

import re
from html import unescape

from crmsync.tracking.htmlscan import Kind, tokens

__all__ = ["html_to_text"]

# Elements whose text is never shown to a reader.
_HIDDEN = frozenset({"script", "style", "title", "template"})
# Elements that start a new line when they open or close.
# fmt: off
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "ul"
})
# fmt: on
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


# What html.parser reads as raw text (its CDATA_CONTENT_ELEMENTS); both are hidden.
_RAW_TEXT = frozenset({"script", "style"})


class _TextCollector:
    def __init__(self) -> None:
        self.pieces: list[str] = []
        self._hidden = 0

    def start(self, tag: str) -> None:
        if tag == "body":
            self._hidden = 0  # an unclosed <title> in the head must not hide the body
        elif tag in _HIDDEN:
            self._hidden += 1
        elif tag in _BLOCKS:
            self.pieces.append("\n")
            if tag == "li":
                self.pieces.append("- ")

    def end(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS and tag != "li":  # the next item or the list's end breaks
            self.pieces.append("\n")

    def data(self, data: str) -> None:
        if not self._hidden:
            self.pieces.append(_SPACES.sub(" ", unescape(data).replace("\n", " ")))


def html_to_text(html: str) -> str:
    """``'<p>Hello&nbsp;<b>Ann</b></p><p>Bye</p>'`` → ``'Hello Ann\\n\\nBye'``."""
    collector = _TextCollector()
    for token in tokens(html, _RAW_TEXT):
        if token.kind is Kind.TEXT:
            collector.data(html[token.start : token.end])
        elif token.kind is Kind.START:
            collector.start(token.name)
            if token.self_closing:  # html.parser: a start and an end tag
                collector.end(token.name)
        elif token.kind is Kind.END:
            collector.end(token.name)
    text = "".join(collector.pieces)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()
