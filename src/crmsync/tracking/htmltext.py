"""A plain-text rendering of an HTML body, for emails that have no text/plain part.

For search, previews and the text column of an email activity. It is not a sanitizer and
must never be used as one: sanitizing HTML for display (nh3) happens where it is shown.
Uses only the stdlib ``html.parser`` (HTML5 character references via ``convert_charrefs``);
never raises for any input.
"""

from __future__ import annotations

import contextlib
import re
from html.parser import HTMLParser

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


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._hidden = 0  # an unclosed <title> in the head must not hide the body
        elif tag in _HIDDEN:
            self._hidden += 1
        elif tag in _BLOCKS:
            self.pieces.append("\n")
            if tag == "li":
                self.pieces.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS and tag != "li":  # the next item or the list's end breaks
            self.pieces.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.pieces.append(_SPACES.sub(" ", data.replace("\n", " ")))


def html_to_text(html: str) -> str:
    """``'<p>Hello&nbsp;<b>Ann</b></p><p>Bye</p>'`` → ``'Hello Ann\\n\\nBye'``."""
    collector = _TextCollector()
    # html.parser is lenient; should it ever fail, keep what was collected until then.
    with contextlib.suppress(Exception):
        collector.feed(html)
        collector.close()
    text = "".join(collector.pieces)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()
